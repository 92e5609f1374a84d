package rsyncd

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidConfig is returned (wrapped) by Config.Validate, Write and
// Daemon.Run when a value cannot be written into rsyncd.conf as it is: it
// would break the file's line format, be expanded by rsync, or weaken the
// module's protection. The message names the field and what to change.
var ErrInvalidConfig = errors.New("invalid rsync daemon configuration")

// Defaults used when the corresponding Config field is zero.
const (
	// DefaultUser is the user name clients authenticate as.
	DefaultUser = "jailsync"
	// DefaultListenBacklog replaces rsync's backlog of 5, with which bursts
	// of connections lose SYNs and pay one-second retransmits.
	DefaultListenBacklog = 128
	// DefaultMaxConnections bounds simultaneous connections per module.
	DefaultMaxConnections = 64
	// DefaultTimeout is the daemon's I/O timeout: a client that sends
	// nothing for this long is dropped and its connection slot freed.
	DefaultTimeout = 5 * time.Minute
)

// Directories inside every data root for the clients' --temp-dir and
// --partial-dir, relative to the module root. The receiver resolves a
// relative --temp-dir from the transfer's destination directory, so
// clients pass them with a leading "/" ("--temp-dir=/" + TempDir): in a
// chrooted module "/" is the module root, whatever the destination (a
// relative one works only when the destination is the root itself). The
// module's daemon filter refuses every other name under the reserved
// directory (see renderModule).
//
// Temp files go in the reserved directory itself, not in a directory of
// their own below it: rsync 3.5.0's receiver resolves the temp directory
// one component at a time, twice for every file it receives (an openat,
// fstatat and close per component), and one component less took the
// daemons of a 2,000-file push to three peers 28.6 against 32.6 clock
// ticks and 0.261 against 0.289 s (8 pushes each; docs/benchmarks.md, the
// seventy-seventh session). The agent removes at start the files a killed
// receiver left there, every file but the root's marker
// (index.MarkerFile).
const (
	reservedDir = ".jailsync" // index.ReservedDir
	TempDir     = reservedDir
	PartialDir  = reservedDir + "/partial"
)

// maxPasswordLen is the longest password a client can send from
// --password-file: getpassf() in rsync's authenticate.c reads at most 511
// bytes. The daemon's check_secret() reads secrets lines of up to 1023.
const maxPasswordLen = 511

// maxPathLen is FreeBSD's PATH_MAX without the NUL (docs/api.md).
const maxPathLen = 1023

// maxNameLen is the longest module name: a DNS-1123 subdomain, which is
// what a SyncGroup's name is.
const maxNameLen = 253

// Module is one rsync module: a data root that peers push into.
type Module struct {
	// Name is the module name, the SyncGroup's name: letters, digits, '.',
	// '_' and '-', starting with a letter or digit, not "global".
	Name string
	// Path is the data root: absolute, clean, not "/".
	Path string
	// HostsAllow are the addresses peers connect from (their member
	// addresses, which their clients bind with --address). Every other
	// address is refused; an empty list refuses everyone.
	HostsAllow []netip.Addr
	// ReadOnly refuses uploads.
	ReadOnly bool
}

// Config is the whole daemon configuration.
type Config struct {
	// Address is where the daemon listens: the member's own address (never
	// the wildcard, or hosts allow would see loopback clients as
	// 127.0.0.1) and port.
	Address netip.AddrPort
	// StateDir holds rsyncd.conf, the secrets, pid, lock and log files.
	// Absolute and clean; created (0700) by Write when missing.
	StateDir string
	// Modules are the served data roots.
	Modules []Module
	// User is the one authorised user (DefaultUser when empty).
	User string
	// Password is User's password; one trailing newline is trimmed (the
	// form a Secret file usually has). It may contain ':' and spaces, but
	// not newlines, carriage returns or NULs, and at most 511 bytes.
	Password string
	// NoAuth serves the modules without "auth users": any client from
	// HostsAllow may write, with no user and no password. Only for the
	// agent's --insecure (a trusted network); Password must then be empty.
	NoAuth bool
	// MaxConnections per module (DefaultMaxConnections when 0).
	MaxConnections int
	// Timeout is the daemon's I/O timeout, rounded up to whole seconds
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// ListenBacklog of the listening socket (DefaultListenBacklog when 0).
	ListenBacklog int
	// TransferLog writes one line per received file to the log file (see
	// ParseLogLine). Off in the agent: the receiver records what arrived
	// from the sender's itemized output (the Received call), the lines cost
	// the daemon about 40% more CPU on a burst of small files (measured:
	// 0.190 s against 0.136 s per 2,000 x 4 KiB), and the log is not
	// rotated. Connections and errors are logged either way.
	TransferLog bool
}

// File names inside StateDir.
const (
	confName    = "rsyncd.conf"
	secretsName = "rsyncd.secrets"
	pidName     = "rsyncd.pid"
	lockName    = "rsyncd.lock"
	logName     = "rsyncd.log"
)

// ConfigFile is the path of rsyncd.conf, which the daemon is started with.
func (c Config) ConfigFile() string { return filepath.Join(c.StateDir, confName) }

// SecretsFile is the path of the secrets file (mode 0600).
func (c Config) SecretsFile() string { return filepath.Join(c.StateDir, secretsName) }

// PIDFile is the path of the daemon's pid file.
func (c Config) PIDFile() string { return filepath.Join(c.StateDir, pidName) }

// LockFile is the path of the lock file behind max connections.
func (c Config) LockFile() string { return filepath.Join(c.StateDir, lockName) }

// LogFile is the path of the daemon's log, with one transfer line per file
// received (see ParseLogLine).
func (c Config) LogFile() string { return filepath.Join(c.StateDir, logName) }

func (c Config) user() string {
	if c.User == "" {
		return DefaultUser
	}
	return c.User
}

// password returns Password with one trailing newline trimmed.
func (c Config) password() string {
	return strings.TrimSuffix(c.Password, "\n")
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate reports the first value that cannot be written, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if err := validateAddr("address", c.Address.Addr()); err != nil {
		return err
	}
	if c.Address.Port() == 0 {
		return invalid("address %s: port 0; give the daemon's port", c.Address)
	}
	if err := validatePath("state directory", c.StateDir); err != nil {
		return err
	}
	if err := validateName("user", c.user()); err != nil {
		return err
	}
	switch {
	case c.NoAuth && c.password() != "":
		return invalid("a password with NoAuth: the daemon would not ask for it; leave one of them out")
	case !c.NoAuth:
		if err := validatePassword(c.password()); err != nil {
			return err
		}
	}
	if c.MaxConnections < 0 || c.ListenBacklog < 0 || c.Timeout < 0 {
		return invalid("max connections %d, listen backlog %d, timeout %s: negative; use 0 for the default",
			c.MaxConnections, c.ListenBacklog, c.Timeout)
	}
	seen := make(map[string]bool, len(c.Modules))
	for _, m := range c.Modules {
		if err := m.validate(); err != nil {
			return err
		}
		if seen[m.Name] {
			return invalid("module %q: listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

func (m Module) validate() error {
	if err := validateName("module name", m.Name); err != nil {
		return err
	}
	if strings.EqualFold(m.Name, "global") {
		return invalid("module name %q: [global] is rsyncd.conf's section for defaults; rename the group", m.Name)
	}
	if err := validatePath(fmt.Sprintf("module %q path", m.Name), m.Path); err != nil {
		return err
	}
	for _, a := range m.HostsAllow {
		if err := validateAddr(fmt.Sprintf("module %q hosts allow", m.Name), a); err != nil {
			return err
		}
	}
	return nil
}

// validateName accepts module and user names made of characters that mean
// nothing to rsyncd.conf (rsyncd.conf(5): a module name cannot contain '/'
// or ']', whitespace is collapsed; "auth users" splits on ',' and spaces and
// gives '@', ':' and '#' meanings).
func validateName(what, s string) error {
	if s == "" {
		return invalid("%s is empty", what)
	}
	if len(s) > maxNameLen {
		return invalid("%s %q: longer than %d bytes", what, s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return invalid("%s %q: must start with a letter or digit", what, s)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return invalid("%s %q: byte %q at %d; only letters, digits, '.', '_' and '-' are written into rsyncd.conf", what, s, c, i)
		}
	}
	return nil
}

// validatePath accepts paths that rsyncd.conf stores verbatim. The file's
// parser (params.c) ends a value at a newline unless the line ends in a
// backslash, drops '\r', and strips leading and trailing whitespace;
// loadparm.c expands "%NAME%" from the environment when NAME starts with an
// upper-case letter (rsyncd.conf(5) suggests "%%" for a literal '%', but
// rsync 3.5.0 keeps "%%" as two characters, so no escape exists); and a
// "/./" element splits the path into a chroot and an inner directory.
func validatePath(what, p string) error {
	switch {
	case p == "":
		return invalid("%s is empty", what)
	case !strings.HasPrefix(p, "/"):
		return invalid("%s %q: not absolute", what, p)
	case p == "/":
		return invalid("%s %q: the whole filesystem cannot be served or used", what, p)
	case filepath.Clean(p) != p:
		return invalid("%s %q: not clean (no //, /./, /../ or trailing /); use %q", what, p, filepath.Clean(p))
	case len(p) > maxPathLen:
		return invalid("%s: %d bytes, longer than %d", what, len(p), maxPathLen)
	case strings.HasSuffix(p, " "):
		// params.c strips isspace() in the C locale: ASCII whitespace only,
		// and the other whitespace bytes are control characters.
		return invalid("%s %q: ends in a space, which rsyncd.conf strips; rename the directory", what, p)
	case strings.HasSuffix(p, `\`):
		return invalid("%s %q: ends in a backslash, which continues the line in rsyncd.conf; rename the directory", what, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f {
			return invalid("%s %q: control character %q at %d cannot be written into rsyncd.conf", what, p, c, i)
		}
		if c == '%' && i+1 < len(p) && (p[i+1] >= 'A' && p[i+1] <= 'Z' || p[i+1] >= 0x80) {
			return invalid("%s %q: %q at %d reads as an environment variable reference in rsyncd.conf; rename the directory", what, p, p[i:i+2], i)
		}
	}
	return nil
}

func validateAddr(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return invalid("%s: no address", what)
	case a.IsUnspecified():
		return invalid("%s %s: the wildcard address; give the member's own address", what, a)
	case a.Zone() != "":
		return invalid("%s %s: addresses with a zone are not supported (rsyncd.conf would expand %%zone%%)", what, a)
	}
	return nil
}

func validatePassword(p string) error {
	switch {
	case p == "":
		return invalid("password is empty")
	case len(p) > maxPasswordLen:
		return invalid("password: %d bytes, longer than %d (what rsync --password-file reads)", len(p), maxPasswordLen)
	case strings.ContainsAny(p, "\n\r\x00"):
		// check_secret() and getpassf() cut the line at '\n' or '\r'.
		return invalid("password contains a newline, carriage return or NUL; rsync would cut it there")
	}
	return nil
}

// refuseOptions are the client options the daemon refuses (rsyncd.conf(5)
// "refuse options", options.c set_refuse_options): every --delete mode,
// since a --delete on a live tree removes what a peer created a moment ago
// and has not sent yet, but not --delete-missing-args, which the engine
// sends deletions with ("delete" itself would refuse it too: options.c
// refuses missing_args == 2 when "delete" is refused) and "del" (--del,
// --delete-during's short name, which "delete-*" does not match: a client
// can send it as is, -M--del); --remove-source-files and its old name
// --remove-sent-files, which stores another value and so is not refused
// with it (options.c same_refuse_action): a pull would delete the module's
// files; --inplace and --append*, which write into the live file instead
// of a temp file renamed into place. Negation ("!") needs rsync 3.2.0 (see
// CheckVersion).
const refuseOptions = "delete-* !delete-missing-args del remove-source-files remove-sent-files inplace append*"

// render returns rsyncd.conf for a validated c.
func (c Config) render() string {
	var b strings.Builder
	w := func(k string, v any) { fmt.Fprintf(&b, "%s = %v\n", k, v) }
	b.WriteString("# Written by the jailsync node agent (nodeagent/rsyncd); changes are overwritten.\n")
	b.WriteString("# rsync re-reads this file for every connection; see rsyncd.conf(5).\n")
	w("address", c.Address.Addr().Unmap())
	w("port", c.Address.Port())
	w("pid file", c.PIDFile())
	w("lock file", c.LockFile())
	w("log file", c.LogFile())
	// Only effective as global parameters (docs: rsync daemon traps).
	w("socket options", "TCP_NODELAY")
	w("reverse lookup", "no")
	w("listen backlog", orDefault(c.ListenBacklog, DefaultListenBacklog))
	for _, m := range c.Modules {
		fmt.Fprintf(&b, "\n[%s]\n", m.Name)
		c.renderModule(&b, m)
	}
	return b.String()
}

func (c Config) renderModule(b *strings.Builder, m Module) {
	w := func(k string, v any) { fmt.Fprintf(b, "\t%s = %v\n", k, v) }
	w("path", m.Path)
	// Chrooted into the path: symlinks are stored verbatim and cannot lead
	// out of the module; munging is then off by default, said explicitly.
	w("use chroot", "yes")
	w("munge symlinks", "no")
	w("numeric ids", "yes")
	// As root without uid/gid the transfer runs as nobody and every write
	// fails (exit 23).
	w("uid", 0)
	w("gid", 0)
	w("read only", yesNo(m.ReadOnly))
	w("list", "no")
	if !c.NoAuth {
		w("auth users", c.user())
		w("secrets file", c.SecretsFile())
		w("strict modes", "yes")
	}
	hosts := make([]string, 0, len(m.HostsAllow))
	seen := make(map[netip.Addr]bool, len(m.HostsAllow))
	for _, a := range m.HostsAllow {
		if a = a.Unmap(); !seen[a] {
			seen[a] = true
			hosts = append(hosts, a.String())
		}
	}
	if len(hosts) > 0 {
		w("hosts allow", strings.Join(hosts, " "))
	}
	w("hosts deny", "*")
	w("max connections", orDefault(c.MaxConnections, DefaultMaxConnections))
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	w("timeout", int64((timeout+time.Second-1)/time.Second))
	w("refuse options", refuseOptions)
	// The reserved directory is refused to clients, except the temp and
	// partial directories themselves: options.c rejects a --temp-dir that
	// the daemon filter excludes ("Your options have been rejected"), so
	// "exclude = /.jailsync/" would refuse --temp-dir=/.jailsync: the
	// reserved directory itself passes (it is the temp directory), no
	// file in it does (the root's marker, temp files). The partial
	// directory's files are let through: the receiver names a
	// partial file only when the filter admits its name (util.c,
	// partial_dir_fname), and otherwise drops what an interrupted transfer
	// received. A client that names one as a destination writes a partial
	// file, which rsync only ever takes as a delta basis (and verifies).
	// No file of the temp directory passes: a client's --files-from=:PATH
	// that names one is refused (options.c: "Your options have been
	// rejected"; from the twenty-fifth to the twenty-ninth session the
	// receiving agent wrote long runs' lists there).
	w("filter", fmt.Sprintf("+ /%s/ + /%s/ + /%s/* - /%s/***", TempDir, PartialDir, PartialDir, reservedDir))
	w("transfer logging", yesNo(c.TransferLog))
	if c.TransferLog {
		w("log format", logFormat)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDefault(v, def int) string {
	if v == 0 {
		v = def
	}
	return strconv.Itoa(v)
}
