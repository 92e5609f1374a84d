// Package rsync runs one batched rsync push to a peer's rsync daemon: it
// builds the client's argument vector, feeds it the file list on standard
// input, reads rsync's itemized output back into an outcome per path, and
// classifies the exit code.
//
// Push sends a list of root-relative paths (content, mode, mtime, numeric
// owner and group, symlinks as links, hard links among the listed names,
// devices and special files, parents created as needed); Delete deletes a
// list of paths gone here (--delete-missing-args --force). Paths never
// reach a command line or a shell: each goes on standard input as
// "./path\x00" (--from0 --files-from=-). The "./" keeps rsync from dropping
// names that start with '#' or ';' as comments.
//
// rsync's exit code is per run. Each path's outcome comes from its
// itemized line (--out-format with %i and %n, unchanged files included by
// a second --itemize-changes), from an error line that names it, or from
// its absence in a run that completed. Names come back escaped ("\#ooo" for
// control bytes and for a backslash that starts such a sequence); they are
// decoded exactly, so names with newlines, backslashes or invalid UTF-8
// match. Classify maps every exit code of rsync's errcode.h to OK, Retry,
// Partial, FatalFile or FatalPeer; unknown codes are Retry.
//
// # Caveats
//
//   - Each path is checked beneath the root (openat2 RESOLVE_BENEATH and
//     RESOLVE_NO_SYMLINKS on Linux, O_RESOLVE_BENEATH per component on
//     FreeBSD, package beneath) before it is listed, because rsync's sender
//     follows a symlinked directory on the way to a listed name. The check
//     and rsync's read are separate: a directory swapped for a symlink in
//     between is followed. Keep writers out of the root's structure, or
//     re-check after the run.
//   - A file changed while rsync sends it is not noticed: re-stat what was
//     sent after the run, and keep a path in at most one run per peer at a
//     time.
//   - -H links only names listed in the same run: list every known name of
//     an inode with a link count above one together.
//   - A listed directory is sent without its contents (no -r): list the
//     contents too. Nothing is ever deleted by a Push (no --delete); a
//     Delete takes only the top-most removed directory.
//   - rsync cannot tell a listed path it did not find from one it skipped:
//     in a run that completed (exit 0 or 24), a Push path without a line is
//     Vanished, a Delete path without a line is Absent. In a run that
//     failed as a whole, such paths are Unconfirmed.
//   - A failure is pinned on a path only when rsync's error line quotes it
//     (or a path inside it); a path whose error rsync words without its
//     name stays Sent. Treat exit 23 (FatalFile) as "re-check the run".
//   - Per-file atomicity only: with TempDir, each file is renamed into
//     place when complete; the batch as a whole is not atomic
//     (DelayUpdates only narrows the window). TempDir must exist on the
//     peer, or rsync exits 1.
//   - The peer's module root takes the root's mode and times: "./" makes
//     rsync send the root directory itself.
//   - Timeouts are always set (DefaultConnectTimeout, DefaultIOTimeout):
//     a stopped daemon accepts TCP connections and would hang a client
//     without them.
//   - Times compare to the nanosecond (--modify-window=-1), which needs
//     rsync 3.1.3 on the peer; a peer filesystem without nanoseconds would
//     see every file as changed.
//   - rsync reads option aliases from /etc/popt, /etc/popt.d and
//     $HOME/.popt. The child runs with HOME=/nonexistent and without
//     RSYNC_* variables; the system-wide files are not avoided.
//   - rsync 3.1 or later is needed (--delete-missing-args); the output
//     parsing expects rsync 3.1's 11-column itemize string. The agent
//     checks at start for the daemon's higher minimum (rsyncd.CheckVersion,
//     3.2.0), which covers the clients: both are the one rsync on PATH.
package rsync
