// Package controllers holds the SyncGroup reconciler, which turns a group's
// membership and what the agents report into status conditions.
package controllers
