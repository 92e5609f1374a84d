// Package change is the one model of a change under a data root that every
// change source (auditpipe, fanotify, the scanner) produces and every later
// stage consumes: a path relative to the root, what happened to it, whether
// its writer is done, and whether this agent's own receiver made it.
//
// # Caveats
//
// Paths from auditpipe are cleaned lexically (Rel): a ".." after a symlink
// resolves differently on disk. Consumers must open every path beneath the
// root with symlinks refused (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS on
// Linux, O_RESOLVE_BENEATH on FreeBSD) before they read or ship it; Rel only
// guarantees that nothing lexically outside the root is ever reported.
package change
