// Package fanotify is the Linux change source: it watches the filesystem
// that holds the data root with fanotify(7) and reports every create,
// write, close, removal, rename and attribute change under the root as a
// change.Change, within milliseconds of the system call.
//
// New opens a fanotify group with an unlimited queue that reports file
// handles instead of descriptors: each event's directory and entry name,
// and the handle of the object itself (FAN_REPORT_DFID_NAME_TARGET); it
// puts one filesystem mark on the root's filesystem, and caches the paths
// of the directories under the root (up to a bound). Run reads the events,
// turns each directory handle back into a path (the cache, kept as of the
// events read so far, or open_by_handle_at(2) and the descriptor's link in
// /proc/self/fd), keeps the
// paths under the root, lstat(2)s each one and reports what is true when
// the event is read: the kernel merges queued events about the same object,
// name and process into one mask and loses their order, so the mask says
// what happened and lstat says what is left.
//
// A regular file's change is Finished only when no process has it open for
// writing, checked with a read lease (fcntl(2) F_SETLEASE), so a file with
// two writers is not finished when the first one closes, and a truncate(2)
// or a hard link, which have no close, are. A truncate read at once can
// still find its own write access counted (fs/open.c, vfs_truncate: the
// event is queued before put_write_access); its mask is a write's, so it
// is reported unfinished and the detector's probe finishes it one probe
// interval later. A new empty file is never
// finished by its creation alone: open(2) with O_CREAT announces the file
// before it takes write access, so in that moment no lease can tell that a
// writer is coming; its close finishes it, or, for a file made without
// write access (mknod(2)), the detector's probe a moment later. The close
// of a file with several names is reported under the name it was opened
// by; it finishes the other names reported unfinished meanwhile.
// The kernel reports a close before it drops the closing writer's access
// (fs/file_table.c, __fput: fsnotify_close before put_file_access), so a
// close read at once can find its own writer still counted, above all
// when the writer was preempted in between: such a change is reported
// unfinished and marked Closed, and the detector's coalescer probes it
// again 5 ms later rather than after the settle period.
//
// FAN_RENAME pairs a rename's old and new names. It is reported as a
// Rename when the new name still holds the object moved (Rename|Subtree for
// a directory), otherwise as what each name holds now. A rename into the
// root from outside (or from an excluded path) is a Create, or a Subtree
// for a directory, a rename out of the root a Remove or an Rmdir. A
// directory removed and made again is an Mkdir|Subtree: its tree is new.
// A queue overflow is reported as a change.Rescan of the whole root.
//
// New fails with an error wrapping ErrUnavailable when fanotify cannot be
// used on this host; the caller then falls back to the scanner. The
// package builds on every OS, but New only works on Linux.
//
// # Caveats
//
// fanotify needs CAP_SYS_ADMIN in the initial user namespace (run the
// agent as root) and Linux 5.17 or later (FAN_RENAME and
// FAN_REPORT_TARGET_FID). The filesystem must support file handles with a
// non-zero fsid (ext4, xfs, tmpfs since Linux 5.13); fanotify_mark(2)
// refuses filesystems without one (/proc, many FUSE filesystems) and btrfs
// subvolumes other than the top one.
//
// The mark covers the whole filesystem, not only the root: every change on
// it (other roots, the Go build cache, /var) is read and resolved to a
// path, and only then dropped. On a busy shared filesystem that costs
// CPU; give data roots their own filesystem where possible. Changes made
// through other mounts of the same filesystem, including bind mounts and
// other mount namespaces (jails, containers), are seen and reported under
// the root's path. Filesystems mounted inside the root are not watched.
//
// Paths are resolved when an event is read, not when it happened: a
// directory renamed in between is reported under its new name, and the
// state reported (Create, Remove, Mkdir, Rmdir) is the one lstat sees at
// that moment. A change inside a directory may thus arrive under either
// name around the directory's rename, which is why a directory rename
// carries Subtree: the consumer moves the tree and compares it. Events
// inside a directory that was removed before they were read are dropped;
// the removal of its top-most removed ancestor is reported instead. An
// event that names no directory (a file reached through a handle, as by an
// NFS server) is reported as a Rescan of the root; a change of a file's
// link count alone, which names no entry, is not reported.
//
// The lease that tells whether a writer still has a file open is held for
// a few microseconds per event. A process that opens the file for writing
// in that moment waits for it to be released, or fails with EWOULDBLOCK if
// it opened with O_NONBLOCK, and the agent receives a SIGIO (ignored unless
// it asks for it with signal.Notify). A file under another holder's lease
// (Samba, NFS server) reads as still being written.
//
// The pid of an event, used for OwnPID and Echo, is only a hint: it is the
// process that caused the event, which for rsync's daemon is a short-lived
// grandchild, and merged events carry one pid.
//
// fanotify cannot see writes through a shared writable mmap(2) until the
// file is closed or written with write(2), nor changes to a file that are
// made on another host of a network filesystem. A file held open for
// writing (a log, a database) is reported with unfinished Write changes
// until its last writer closes it.
package fanotify
