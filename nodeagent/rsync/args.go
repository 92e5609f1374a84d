package rsync

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Target is one peer's rsync daemon module.
type Target struct {
	// Addr is the peer's daemon: an IP literal and its port.
	Addr netip.AddrPort
	// Module is the daemon module that holds the peer's copy of the root.
	Module string
	// User is the module's "auth users" name; empty for a module without
	// authentication.
	User string
	// Password is the user's secret. One trailing newline is dropped (as
	// --password-file does): rsync sends RSYNC_PASSWORD as it is, and a
	// newline fails authentication.
	Password string
	// Source is our own member address, bound with --address so that the
	// peer's "hosts allow" sees it (on loopback, the kernel would otherwise
	// pick 127.0.0.1 whatever address we connect to). Zero: not bound.
	Source netip.Addr
}

// Options tune every run.
type Options struct {
	// BandwidthLimit caps the transfer in bytes per second; 0 means no cap.
	// rsync counts in KiB (--bwlimit), so it is rounded to the nearest KiB,
	// at least 1.
	BandwidthLimit int64
	// Compress compresses file data on the wire (-z).
	Compress bool
	// ConnectTimeout bounds the wait for the daemon's greeting
	// (--contimeout); IOTimeout bounds any wait for data (--timeout). Both
	// round up to whole seconds; zero means DefaultConnectTimeout and
	// DefaultIOTimeout, never "forever": a stopped daemon still completes
	// the TCP handshake, and a client without timeouts waits on it forever.
	ConnectTimeout, IOTimeout time.Duration
	// TempDir receives files while they arrive (--temp-dir), relative to
	// the module root, such as ".jailsync/tmp". It must exist on the peer
	// (rsync exits 1 otherwise) and be on the same filesystem as the module,
	// so that the finished file is renamed into place.
	TempDir string
	// PartialDir keeps a partly received file for the next run
	// (--partial-dir). rsync takes a relative name as one directory inside
	// each destination directory; an absolute one (under a chrooted module,
	// "/.jailsync/partial") is a single directory in the module, where
	// partial files are named by their last component only: two files of
	// one name in different directories share a slot (the second then
	// starts from the wrong basis: its delta matches less, and rsync's
	// whole-file checksum still verifies what arrives).
	PartialDir string
	// DelayUpdates puts all received files in place at the end of the run
	// (--delay-updates): "a little closer to atomic", at the cost of a
	// second copy's space. Refused with an absolute PartialDir.
	DelayUpdates bool
	// RsyncPath is the rsync client to run; "rsync" (from PATH) when empty.
	RsyncPath string
	// Checked says that the caller resolved every path of a Push beneath
	// the root (beneath.Lstat: inside it, through no symlink) just before,
	// and listed only those: Push then lists them without its own lstat of
	// each (the sender plans every run that way, and a second lstat per
	// file and peer was a tenth of its CPU on a burst). Push checks either
	// way only moments before rsync reads the files; a path that vanished
	// meanwhile is still Vanished, by its absence from rsync's output.
	// Delete always checks.
	Checked bool
	// Checksum compares files by whole-file checksum instead of size and
	// mtime (--checksum): for files written without a change of either.
	Checksum bool
	// Progress, when set, is told during a Push how many bytes of the
	// listed files rsync has gone through so far in this run
	// (--info=progress2: the total of the files transferred and the
	// offset in the current one, about once a second and after each
	// file). For runs that take long enough to watch: rsync then also
	// prints a line per file, which a burst of small files would pay for.
	Progress func(transferred int64)
}

// Defaults for the zero Options timeouts.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultIOTimeout      = 60 * time.Second
)

// ErrTarget is returned when a Target cannot make an rsync daemon URL.
var ErrTarget = errors.New("invalid rsync target")

// mode says which kind of run is built.
type mode int

const (
	modePush mode = iota
	modeDelete
)

// buildArgs returns rsync's arguments after the program name. No path is
// ever on the command line: paths go on standard input.
func buildArgs(t Target, o Options, m mode) ([]string, error) {
	url, err := t.url()
	if err != nil {
		return nil, err
	}
	if o.DelayUpdates && strings.HasPrefix(o.PartialDir, "/") {
		// Delayed files wait in the partial directory, an absolute one
		// holding one slot per last component (util1.c
		// partial_dir_fname): a/x and b/x in one run would be put in
		// place with each other's content.
		return nil, fmt.Errorf("DelayUpdates with the absolute PartialDir %q: files of one name in two directories would swap content; use a relative PartialDir", o.PartialDir)
	}
	args := []string{
		// -a without -r, spelled out (--files-from does not recurse).
		"--links", "--perms", "--times", "--group", "--owner", "--devices", "--specials",
		"--hard-links", "--numeric-ids",
		// Times are equal only to the nanosecond (rsync(1),
		// --modify-window; the default compares whole seconds, so a device
		// made in the same second keeps the peer's nanoseconds, and a
		// change within one second is not seen). Needs a 3.1.3 receiver.
		"--modify-window=-1",
		// Implied by --files-from; said so that the parents of a listed
		// path are created on the peer ("implied directories").
		"--relative", "--dirs",
		// A non-empty directory that became a file here is replaced on
		// the peer; deletes of non-empty directories go through.
		"--force",
	}
	if m == modeDelete {
		args = append(args, "--delete-missing-args")
	} else {
		// A path gone before rsync reads it is not an error to rsync; its
		// absence from the itemized output says it (Vanished).
		args = append(args, "--ignore-missing-args")
	}
	args = append(args,
		// The list on the client's standard input, always: read from
		// the peer (--files-from=:PATH, from the twenty-fifth to the
		// twenty-ninth session), the names came from the peer, which
		// could name a path through a symlink in this root and have the
		// client send any file of the host (docs/design.md, "Lists stay
		// on this member").
		"--from0", "--files-from=-",
		// Twice: unchanged files are itemized too (options.c,
		// stdout_format_has_i), so every listed path gets a line.
		"--itemize-changes", "--itemize-changes",
		"--out-format="+outFormat,
		"--8-bit-output",
		"--stats", "--no-human-readable",
		"--sockopts=TCP_NODELAY",
		"--contimeout="+seconds(o.ConnectTimeout, DefaultConnectTimeout),
		"--timeout="+seconds(o.IOTimeout, DefaultIOTimeout),
	)
	if t.Source.IsValid() {
		args = append(args, "--address="+t.Source.WithZone("").String())
	}
	if o.TempDir != "" {
		args = append(args, "--temp-dir="+o.TempDir)
	}
	if o.PartialDir != "" {
		args = append(args, "--partial-dir="+o.PartialDir)
	}
	if o.DelayUpdates {
		args = append(args, "--delay-updates")
	}
	if o.BandwidthLimit > 0 {
		args = append(args, "--bwlimit="+strconv.FormatInt(max(1, (o.BandwidthLimit+512)/1024), 10))
	}
	if o.Compress {
		args = append(args, "--compress")
	}
	if o.Progress != nil && m == modePush {
		args = append(args, "--info=progress2")
	}
	if o.Checksum && m == modePush {
		args = append(args, "--checksum")
	}
	return append(args, ".", url), nil
}

// seconds renders a timeout in whole seconds, rounded up, at least 1.
func seconds(d, def time.Duration) string {
	if d <= 0 {
		d = def
	}
	return strconv.FormatInt(int64(max(1, (d+time.Second-1)/time.Second)), 10)
}

// url is rsync://[user@]addr:port/module/, with an IPv6 address in
// brackets (netip.AddrPort.String does that).
func (t Target) url() (string, error) {
	if !t.Addr.IsValid() || t.Addr.Port() == 0 {
		return "", fmt.Errorf("%w: address %v needs an IP and a port", ErrTarget, t.Addr)
	}
	if t.Module == "" || strings.ContainsAny(t.Module, "/]") || hasControl(t.Module) {
		return "", fmt.Errorf("%w: module %q: give a daemon module name, without '/'", ErrTarget, t.Module)
	}
	if strings.ContainsAny(t.User, "@:/") || hasControl(t.User) {
		return "", fmt.Errorf("%w: user %q holds '@', ':', '/' or a control character", ErrTarget, t.User)
	}
	user := ""
	if t.User != "" {
		user = t.User + "@"
	}
	addr := netip.AddrPortFrom(t.Addr.Addr().WithZone(""), t.Addr.Port())
	return "rsync://" + user + addr.String() + "/" + t.Module + "/", nil
}

// hasControl reports a byte below space or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// environ is the child's environment: ours without any RSYNC_* variable
// (RSYNC_PROXY, RSYNC_CONNECT_PROG, RSYNC_PARTIAL_DIR, RSYNC_OLD_ARGS... all
// change what a run does) and without locale settings, plus LC_ALL=C for
// stable messages and the password. RSYNC_PASSWORD is always set, even
// empty, so that rsync never asks for one on a terminal. HOME points
// nowhere: rsync reads popt aliases from $HOME/.popt (options.c,
// poptReadDefaultConfig), which could redefine any option.
func environ(password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RSYNC_") || strings.HasPrefix(kv, "LC_") ||
			strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "HOME=/nonexistent", "RSYNC_PASSWORD="+strings.TrimSuffix(password, "\n"))
}
