// Package e2e runs real nodeagent binaries in standalone mode, several on
// one host on loopback addresses (127.0.5.x, ports 18500-18699), each with
// its own tmpfs root, and checks that they converge, by content. The tests
// need Linux and root (tmpfs mounts, fanotify).
package e2e
