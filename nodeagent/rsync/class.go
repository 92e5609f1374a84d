package rsync

import "fmt"

// Class says what a caller should do after a run, judged from rsync's exit
// code (rsync's exit codes are per run, never per file: see Result.Paths for
// what happened to each path).
type Class int

const (
	// OK: every listed path went through; the per-path outcomes confirm it.
	OK Class = iota
	// Retry: the run failed for a reason that may pass (connection refused,
	// timeouts, a killed or crashed process, an I/O error such as a full
	// disk). Nothing can be concluded per path beyond what Result.Paths
	// confirms; run the unconfirmed paths again later, with backoff.
	Retry
	// Partial: the run went through except for paths that vanished on our
	// side while it ran. Re-queue only the paths whose outcome is not final.
	Partial
	// FatalFile: rsync failed on some files and said which (exit 23); the
	// others went. Those files fail again the same way until something
	// changes: re-queue them with backoff and report them.
	FatalFile
	// FatalPeer: the peer refuses this client (authentication, protocol,
	// an option or a directory it does not have). Running again gives the
	// same result: stop sending to this peer until its configuration changes.
	FatalPeer
)

// String names the class for logs: "ok", "retry", "partial", "fatal-file",
// "fatal-peer".
func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Retry:
		return "retry"
	case Partial:
		return "partial"
	case FatalFile:
		return "fatal-file"
	case FatalPeer:
		return "fatal-peer"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// exitCode is one row of the table below.
type exitCode struct {
	class Class
	desc  string
}

// exitCodes lists every code of rsync's errcode.h (RsyncProject/rsync,
// errcode.h and the rerr_names table in log.c; "EXIT VALUES" in rsync(1)),
// plus 6, which older rsync manuals list. It is a function, not a variable,
// so that the package holds no mutable state.
func exitCodes() map[int]exitCode {
	return map[int]exitCode{
		0: {OK, "success"},
		// Our argument vector or the peer's settings are refused (an option
		// the peer's rsync lacks, a --temp-dir missing on the peer): the
		// same run fails again.
		1: {FatalPeer, "syntax or usage error (an option is refused, or the peer lacks the temp dir)"},
		2: {FatalPeer, "protocol incompatibility"},
		// Raised for the top-level directories only (main.c change_dir#1-4
		// of the destination, flist.c change_dir of the source, getcwd):
		// with --files-from, a single listed file never causes it.
		3: {FatalPeer, "errors selecting input/output files, dirs (the module's directory or the data root)"},
		4: {FatalPeer, "requested action not supported by the peer's rsync"},
		// "@ERROR: auth failed", an unknown module, "hosts allow" refusing
		// our address. Result.Class refines a "max connections" refusal,
		// which passes, to Retry.
		5:  {FatalPeer, "error starting client-server protocol (authentication, module or hosts allow)"},
		6:  {Retry, "daemon unable to append to its log file"},
		10: {Retry, "error in socket I/O (connection refused or reset)"},
		11: {Retry, "error in file I/O (such as a full disk)"},
		12: {Retry, "error in rsync protocol data stream (connection lost)"},
		13: {Retry, "errors with program diagnostics"},
		14: {Retry, "error in IPC code"},
		15: {Retry, "sibling process crashed"},
		16: {Retry, "sibling process terminated abnormally"},
		19: {Retry, "received SIGUSR1"},
		20: {Retry, "received SIGINT, SIGTERM, or SIGHUP"},
		21: {Retry, "some error returned by waitpid()"},
		22: {Retry, "error allocating core memory buffers"},
		23: {FatalFile, "partial transfer due to error: the files named in the errors failed"},
		24: {Partial, "partial transfer due to vanished source files"},
		// We never pass --max-delete; seeing it means a configuration
		// outside this package asked for a cap, which a rerun hits again.
		25: {FatalPeer, "the --max-delete limit stopped deletions"},
		30: {Retry, "timeout in data send/receive"},
		35: {Retry, "timeout waiting for daemon connection"},
		// 124-127 come from a remote shell, which a daemon connection never
		// uses: something (RSYNC_CONNECT_PROG, a wrapper) is misconfigured.
		124: {FatalPeer, "remote shell failed"},
		125: {FatalPeer, "remote shell killed"},
		126: {FatalPeer, "remote command could not be run"},
		127: {FatalPeer, "remote command not found"},
	}
}

// Classify maps an rsync exit code to what the caller should do. A code
// this package does not know is Retry, never fatal: lsyncd treated unknown
// codes as fatal and stopped syncing (lsyncd issues #97, #259).
func Classify(exitCode int) Class {
	if e, ok := exitCodes()[exitCode]; ok {
		return e.class
	}
	return Retry
}

// Describe gives a short human description of an rsync exit code.
func Describe(exitCode int) string {
	if e, ok := exitCodes()[exitCode]; ok {
		return e.desc
	}
	if exitCode < 0 {
		return "rsync was killed by a signal (unknown exit code, retried)"
	}
	return fmt.Sprintf("unknown rsync exit code %d (retried)", exitCode)
}
