// Package tmpfs gives tests a filesystem of their own: a tmpfs mounted on a
// new temporary directory, unmounted when the test ends. A fanotify
// filesystem mark on it sees no other test's events, and it can be
// unmounted under an agent to show that an unmounted root is refused.
package tmpfs
