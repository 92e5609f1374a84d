// Package index is the agent's persistent record of every path under a data
// root (size, times, mode, owner, inode), kept in a bbolt database together
// with the root's identity.
//
// The index decides what is a change: a path whose lstat matches its entry
// is not one. That is how echo suppression works, by state: whatever this
// agent's rsync receiver wrote is recorded with its lstat, so the events it
// causes compare equal and are not sent on. Pids and audit user ids are only
// a shortcut (the writing process is usually gone when its event is read).
//
// The root's identity (device and a marker file holding a random id) makes
// an unmounted or replaced root recognisable: CheckRoot refuses it instead
// of letting a scan read an empty directory as "everything was deleted".
//
// Every non-directory entry is also listed by its inode (hard links), so
// that a sender can put every name of a changed file in the same rsync run
// (Links). The list is kept in the transactions that write the entries; a
// database from before it is filled from its entries when first opened.
//
// # Caveats
//
// Keys order children of one directory together (parent, NUL, name), so a
// directory's entries are one range scan; a whole subtree is not. Names may
// hold any byte but NUL and '/'.
package index
