// Package rsyncd runs the rsync daemon that receives a member's peers'
// pushes: Write renders rsyncd.conf and the secrets file into the agent's
// state directory, and a Daemon runs `rsync --daemon --no-detach` as a
// supervised child that it restarts with backoff and stops with its context.
//
// Every module is chrooted into its data root and writes as root
// (uid = 0, gid = 0, numeric ids), so symlinks arrive verbatim, owners,
// groups, modes and times replicate, and nothing outside the root can be
// reached. Clients authenticate as one user (Config.User) and must connect
// from a member's address (hosts allow, reverse lookup off): the daemon
// listens on the member's own address, never the wildcard, and clients bind
// theirs with --address. The pid, lock, log and secrets files live in the
// state directory, so several daemons on one host do not collide.
//
// Clients are expected to run rsync with --numeric-ids,
// --sockopts=TCP_NODELAY, --contimeout and --timeout, and to pass
// --temp-dir=/TempDir (and --partial-dir=/PartialDir): with the leading
// "/" they name the module root's reserved directory whatever the
// destination directory. The module's daemon filter refuses every name under the reserved
// .jailsync directory except those two directories (and the partial
// files in the partial one), and "refuse options"
// refuses every --delete mode (but not --delete-missing-args), --inplace,
// --append and --remove-source-files.
//
// CheckVersion refuses an rsync older than MinVersion, whose "refuse
// options" cannot except --delete-missing-args; call it once at start.
//
// With Config.TransferLog (off in the agent; refused with an rsync before
// 3.5.0, which writes names to its log unescaped), the daemon's log file has one line per file
// received; ParseLogLine reads it, and DecodeLogName undoes rsync's "\#ooo"
// escaping of names exactly.
//
// The rsync daemon traps this package avoids are listed, with how each was
// found, in the shared documentation (rsync-and-fanotify.md, "rsync as the
// daemon"); the configuration parameters are from rsyncd.conf(5) and
// rsync's loadparm.c, params.c, clientserver.c, options.c and log.c.
//
// # Caveats
//
// What replicates is what the client's options carry: with -a and
// --numeric-ids, file contents, modes, owners and groups by number,
// modification times and symlinks. ACLs (-A), extended attributes (-X),
// hard links (-H) and access or creation times need the client flags, and
// file flags (FreeBSD chflags: schg, uchg, ...) do not replicate at all.
//
// The daemon runs as root and writes as uid 0: "use chroot = yes" needs
// root, and so does setting owners. A Daemon.Credential with another uid
// loses both (the chroot fails and the module refuses to run), and the
// state directory and the secrets file (which Write creates as the agent's
// user, 0600) must then belong to that user. Credential sets the uid and
// gid only: FreeBSD's audit user id, which the auditpipe source uses to
// hide the receiver's writes, is inherited from the agent (setaudit(2)),
// not set by it.
//
// rsyncd.conf has no quoting: a module path with a newline or other control
// character, leading or trailing whitespace, a trailing backslash or a '%'
// before an upper-case letter (an environment reference, expanded by rsync;
// "%%" is not an escape in rsync 3.5.0) cannot be written and is refused
// with ErrInvalidConfig, as are module names other than letters, digits,
// '.', '_' and '-'. The daemon runs with an environment of PATH (and TZ)
// only.
//
// rsync cuts a log message at 2047 bytes (log.c rwrite), before escaping
// it: the transfer line of a name longer than about 2000 bytes loses its
// end and its newline, so the next message joins it. Use the client's own
// itemized output (--out-format) to confirm what arrived; the log is a
// record, not the source of truth. The log file grows without bound; the
// daemon reopens it for every connection, so renaming it rotates it.
//
// A SIGSTOPped (or otherwise hung) daemon still completes TCP handshakes:
// only the clients' --contimeout and --timeout make them give up, and only
// Ready and Probe, which wait for the daemon's greeting, notice it. The
// supervisor restarts a daemon that exits, not one that hangs.
//
// When the agent dies, Pdeathsig kills the daemon but not its connection
// processes: they finish or time out (Config.Timeout). They do not hold the
// listening socket, so a new daemon can start meanwhile.
package rsyncd
