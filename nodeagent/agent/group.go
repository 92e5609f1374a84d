// Package agent runs one SyncGroup on this node: the managed rsync daemon,
// the agent-to-agent endpoint, change detection, the journal and one sender
// per peer, wired together.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	syncv1 "github.com/jailsync/jailsync/api/v1alpha1"
	"github.com/jailsync/jailsync/nodeagent/antientropy"
	"github.com/jailsync/jailsync/nodeagent/beneath"
	"github.com/jailsync/jailsync/nodeagent/change"
	"github.com/jailsync/jailsync/nodeagent/detect"
	"github.com/jailsync/jailsync/nodeagent/exclude"
	"github.com/jailsync/jailsync/nodeagent/index"
	"github.com/jailsync/jailsync/nodeagent/journal"
	"github.com/jailsync/jailsync/nodeagent/peer"
	"github.com/jailsync/jailsync/nodeagent/receiver"
	"github.com/jailsync/jailsync/nodeagent/rsync"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
	"github.com/jailsync/jailsync/nodeagent/sender"
	"github.com/jailsync/jailsync/nodeagent/source"
)

// Config is what one group's agent needs.
type Config struct {
	// Node is this member's node name.
	Node string
	// Group is the validated SyncGroup (standalone: from the file).
	Group *syncv1.SyncGroup
	// Password is the transport Secret's rsync-password; empty only with
	// Insecure.
	Password string
	Insecure bool
	// Root overrides spec.path (several agents on one host, in tests).
	Root string
	// StateDir holds the index and journal, the daemon's files, the status
	// socket. Never inside the data root.
	StateDir string
	// ScanInterval is the scan period where no change source exists.
	ScanInterval time.Duration
	// AllowMassDelete lets a scan propagate more than half of the files
	// deleted (after an intended wipe).
	AllowMassDelete bool
	// MaxDeleteShare is the share of indexed files one scan may find
	// deleted without AllowMassDelete (scan.DefaultMaxDeleteShare when 0).
	MaxDeleteShare float64
	// Profile serves Go's /debug/pprof on the metrics address.
	Profile bool
	// RetryBackoffCap bounds the wait between failed runs to a peer
	// (sender.DefaultBackoffCap when 0).
	RetryBackoffCap time.Duration
	// AntiEntropySettle is how long this member and a peer must be quiet
	// before they compare trees (antientropy.DefaultSettle when 0).
	AntiEntropySettle time.Duration
	// MetricsAddr is where /metrics, /healthz and /readyz listen; the
	// member's address with its daemon port + 2 when empty.
	MetricsAddr string
	// Log receives everything.
	Log logr.Logger
}

// member is one member's resolved addresses.
type member struct {
	node     string
	daemon   netip.AddrPort
	endpoint netip.AddrPort
}

// resolve finds this node and its peers among the members.
func resolve(cfg Config) (self member, peers []member, err error) {
	found := false
	var all []member
	for _, m := range cfg.Group.Spec.Members {
		ap, err := netip.ParseAddrPort(m.Address)
		if err != nil {
			return self, nil, fmt.Errorf("member %s: address %q: %w", m.Node, m.Address, err)
		}
		// The CRD's rules refuse such ports; checked again because the
		// endpoint and metrics ports are computed in uint16.
		if ap.Port() == 0 || ap.Port() > syncv1.MaxMemberPort {
			return self, nil, fmt.Errorf("member %s: address %q: the port must be 1-%d (the agent also listens on port+1 and port+2)",
				m.Node, m.Address, syncv1.MaxMemberPort)
		}
		for _, o := range all {
			if a, b := int(ap.Port()), int(o.daemon.Port()); o.daemon.Addr().Unmap() == ap.Addr().Unmap() && a < b+3 && b < a+3 {
				return self, nil, fmt.Errorf("members %s (%s) and %s (%s) share an address and their ports are less than 3 apart: "+
					"each member listens on its port, port+1 (agent endpoint) and port+2 (metrics)", o.node, o.daemon, m.Node, ap)
			}
		}
		mm := member{node: m.Node, daemon: ap, endpoint: netip.AddrPortFrom(ap.Addr(), ap.Port()+1)}
		all = append(all, mm)
		if m.Node == cfg.Node {
			self, found = mm, true
			continue
		}
		peers = append(peers, mm)
	}
	if !found {
		return self, nil, fmt.Errorf("--node %s is not a member of SyncGroup %s: use one of its members' names", cfg.Node, cfg.Group.Name)
	}
	return self, peers, nil
}

// dataRoot returns the group's data root on this host, symlinks resolved.
//
// For a root inside a jail it also returns what watches the jail (nil
// otherwise): it ends with an error when the jail runs with another root.
func dataRoot(cfg Config) (string, func(context.Context) error, error) {
	root := cfg.Group.Spec.Path
	switch {
	case cfg.Root != "" && cfg.Group.Spec.Jail != "":
		return "", nil, errors.New("--root cannot be combined with a SyncGroup that names a jail")
	case cfg.Root != "":
		root = cfg.Root
	case cfg.Group.Spec.Jail != "":
		return jailRoot(cfg)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", nil, fmt.Errorf("data root %s: %w", root, err)
	}
	if real == "/" {
		// The CRD refuses "/" as spec.path; --root (and a link to /) is
		// held to the same rule: the whole host, the agent's own state
		// included, is no data directory.
		return "", nil, fmt.Errorf("data root %s is the host's root directory: name the data directory below it", root)
	}
	return real, nil, nil
}

// checkStateDir refuses a state directory inside the data root (the scanner
// would replicate the agent's own files), before it makes anything: a
// refused directory made inside the root would reach every peer at the
// next start. The check resolves the deepest part of the path that exists
// (symlinks included) and appends the rest, which MkdirAll then makes.
func checkStateDir(stateDir, root string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", err
	}
	real, existing, err := resolveExisting(abs)
	if err != nil {
		return "", fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	insideRoot := func() error {
		return fmt.Errorf("state directory %s is inside the data root %s: put it elsewhere (default /var/db/jailsync/<group>)", stateDir, root)
	}
	if real == root || strings.HasPrefix(real, root+"/") {
		return "", insideRoot()
	}
	// By path the two are apart; by device and inode, the part that exists
	// may still be the root or below it (a bind mount or nullfs of the
	// root, a case-insensitive filesystem).
	if in, err := below(existing, root); err != nil {
		return "", fmt.Errorf("state directory %s: %w", stateDir, err)
	} else if in {
		return "", insideRoot()
	}
	if err := os.MkdirAll(real, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	// Made now: resolve again, in case a part appeared meanwhile as a link.
	if again, err := filepath.EvalSymlinks(real); err != nil || again != real {
		return "", fmt.Errorf("state directory %s changed while it was made (%q): check its parents", stateDir, again)
	}
	// The other way round: the daemon's config and secrets file, the
	// index, would be in the data root, and go to every peer.
	if in, err := below(root, real); err != nil {
		return "", fmt.Errorf("state directory %s: %w", stateDir, err)
	} else if in {
		return "", fmt.Errorf("the data root %s is inside the state directory %s: put the state directory elsewhere (default /var/db/jailsync/<group>)", root, stateDir)
	}
	return real, nil
}

// below reports whether the directory dir is top or below it, by device
// and inode up dir's parents: another path to top (a bind mount, nullfs)
// is top too.
func below(dir, top string) (bool, error) {
	var t unix.Stat_t
	if err := unix.Stat(top, &t); err != nil {
		return false, fmt.Errorf("stat %s: %w", top, err)
	}
	for p := dir; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return false, fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Dev == t.Dev && st.Ino == t.Ino {
			return true, nil
		}
		if p == "/" {
			return false, nil
		}
	}
}

// resolveExisting is filepath.EvalSymlinks for a clean absolute path whose
// last parts may not exist yet: the deepest existing ancestor resolved
// (existing), the missing parts appended (real).
func resolveExisting(abs string) (real, existing string, err error) {
	var missing []string
	for p := abs; ; p = filepath.Dir(p) {
		existing, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{existing}, missing...)...), existing, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return "", "", err
		}
		missing = append([]string{filepath.Base(p)}, missing...)
	}
}

// Run runs the group until ctx ends. SIGTERM (ctx) lets in-flight runs
// finish for up to drainTimeout; the journal is intact either way.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Password == "" && !cfg.Insecure {
		return errors.New("the SyncGroup has no transport password (transport.secretRef and its Secret): refusing to run without one; pass --insecure to run unauthenticated on a trusted network")
	}
	self, peers, err := resolve(cfg)
	if err != nil {
		return err
	}
	root, watchJail, err := dataRoot(cfg)
	if err != nil {
		return err
	}
	stateDir, err := checkStateDir(cfg.StateDir, root)
	if err != nil {
		return err
	}
	g := &group{cfg: cfg, self: self, peers: peers, root: root, watchJail: watchJail, stateDir: stateDir, log: cfg.Log.WithValues("group", cfg.Group.Name)}
	return g.run(ctx)
}

// drainTimeout bounds how long in-flight runs may finish after SIGTERM.
// Runs still going then get SIGTERM, and SIGKILL rsync's killGrace (2 s)
// later; their confirmation to the peer has 1 s more
// (sender.confirmAfterStop) and no new rsync starts: the agent exits
// within 9 s and a commit, inside the 10 s that a service manager (rc.d;
// Kubernetes' default grace period is 30 s) is promised.
const drainTimeout = 6 * time.Second

type group struct {
	cfg   Config
	self  member
	peers []member
	root  string
	// watchJail, for a root inside a jail, ends with an error when the
	// jail runs with another root.
	watchJail func(context.Context) error
	stateDir  string
	log       logr.Logger

	idx      *index.Index
	journal  *journal.Journal
	rootfd   int
	incoming *detect.Incoming
	exclude  *exclude.Matcher // the group's excludes, set by detector
	senders  []*sender.Sender
	status   *Status
	metrics  *metrics
	ready    atomic.Bool
	// journaling: journalChanges holds changes not yet committed, or more
	// wait for it (sender.Sender.Journaling).
	journaling atomic.Bool
	// resumes: this rsync resumes transfers from the partial directory
	// (rsync.ResumesFromPartialDir); pushes pass --partial-dir only then.
	resumes bool
	// rsyncPath is the rsync found on PATH at start, which the daemon and
	// every push run.
	rsyncPath string
}

func (g *group) run(ctx context.Context) error {
	// Everything that can be refused is checked before the index, the
	// root's marker or the reserved directory are touched. The daemon and
	// the push clients are one rsync (from PATH): the daemon's minimum
	// (3.2.0, negated "refuse options") is above the clients' (3.1,
	// --delete-missing-args), so one check covers both. An older rsync
	// would refuse every deletion, or accept it and delete nothing
	// (shared/docs/rsync-and-fanotify.md).
	//
	// Found on PATH once, here: the rsync checked is the one every run
	// starts (a PATH lookup per run could find another one installed
	// meanwhile, and cost each of the thousands of runs a stat per PATH
	// entry: 4-5% of a writing agent's CPU on single files).
	var err error
	if g.rsyncPath, err = exec.LookPath("rsync"); err != nil {
		return fmt.Errorf("refusing to start: rsync --version: %w", err)
	}
	version, err := rsyncd.CheckVersion(ctx, g.rsyncPath)
	if err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	// Some rsync versions refuse, as receivers, every deletion a peer
	// sends (rsyncd.CheckDeletes): this member would never converge.
	// Both checks run a local rsync, bounded per attempt (probe.go).
	if err := checkWithAttempts(ctx, g.log, "check rsync's deletions", rsyncCheckTimeout, rsyncCheckAttempts, func(ctx context.Context) error {
		return rsyncd.CheckDeletes(ctx, g.rsyncPath, g.stateDir)
	}); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	// Older ones cannot resume from a partial file in the module's
	// partial directory (rsync.ResumesFromPartialDir): large files are
	// then pushed without one, and a cut transfer starts over.
	if err := checkWithAttempts(ctx, g.log, "check rsync's resume", rsyncCheckTimeout, rsyncCheckAttempts, func(ctx context.Context) (err error) {
		g.resumes, err = rsync.ResumesFromPartialDir(ctx, g.rsyncPath, g.stateDir)
		return err
	}); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	if !g.resumes {
		g.log.Info("this rsync cannot resume a transfer from its partial directory (fixed in rsync 3.4.4): a large file whose transfer is cut starts over", "rsync", version)
	}
	daemon, err := g.daemon()
	if err != nil {
		return err
	}
	if g.unauthenticated() {
		g.log.Info("WARNING: running without authentication (--insecure): any process that can reach a member's address may write to this group's data")
	}
	if g.idx, err = index.Open(filepath.Join(g.stateDir, "index.db")); err != nil {
		return err
	}
	defer g.idx.Close()
	// Opened, then checked: what is checked is what the receiver and the
	// journal then write and read through.
	if g.rootfd, err = beneath.OpenRoot(g.root); err != nil {
		return fmt.Errorf("%w: %v", index.ErrRootMissing, err)
	}
	defer unix.Close(g.rootfd)
	if err := g.idx.CheckRootFD(g.rootfd, g.root); err != nil {
		return err
	}
	if err := g.prepareReserved(partialMaxAge); err != nil {
		return err
	}
	names := make([]string, len(g.peers))
	for i, p := range g.peers {
		names[i] = p.node
	}
	if g.journal, err = journal.Open(g.idx, names); err != nil {
		return err
	}
	g.journal.RacyWindow = g.racyWindow()
	g.incoming = &detect.Incoming{}
	g.status = newStatus(g.cfg.Group.Name, g.cfg.Node, names, g.journal)
	g.status.suspended = g.cfg.Group.Spec.Suspend
	g.metrics = newMetrics(g.status.Snapshot)
	g.metrics.peers(g.cfg.Group.Name, names)

	// Runs get their own context: on a signal they may finish for a while;
	// when the group fails (its root refused, a mass deletion, the
	// journal), they stop at once: nothing more goes out from a root just
	// refused.
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	signalled := ctx
	eg, ctx := errgroup.WithContext(ctx)
	stopRuns := context.AfterFunc(ctx, func() {
		if signalled.Err() != nil {
			time.AfterFunc(drainTimeout, cancelRuns)
			return
		}
		cancelRuns()
	})
	defer stopRuns()

	eg.Go(func() error { return daemon.Run(ctx) })
	eg.Go(func() error {
		if err := daemon.Ready(ctx); err != nil {
			return fmt.Errorf("rsync daemon: %w", err)
		}
		g.ready.Store(true)
		return nil
	})
	if err := g.startParts(ctx, runCtx, eg, daemon); err != nil {
		// What started already stops with the group: the error ends
		// the group's context, and Wait returns it once they are done.
		eg.Go(func() error { return err })
	} else {
		g.log.Info("group running", "node", g.cfg.Node, "root", g.root, "daemon", g.self.daemon, "peers", len(g.peers), "rsync", version)
	}
	err = eg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startParts starts the detector, the endpoint, metrics, status, the
// senders and the journal's feed in eg, after the daemon.
func (g *group) startParts(ctx, runCtx context.Context, eg *errgroup.Group, daemon *rsyncd.Daemon) error {
	det, err := g.detector()
	if err != nil {
		return err
	}
	// Set before the journal records anything (journalChanges, below).
	g.journal.Unreadable = func(path string, err error) {
		g.log.Info("cannot look at a changed path; it is scanned again after a wait", "path", path, "error", err.Error())
		det.RescanLater(path)
	}
	cmp := g.comparer(det)
	if err := g.serveEndpoint(ctx, eg, det.Rescan, cmp); err != nil {
		return err
	}
	metricsAddr := g.cfg.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = netip.AddrPortFrom(g.self.daemon.Addr(), g.self.daemon.Port()+2).String()
	}
	// Ready: the daemon answered once, and is running now (between a crash
	// and its restart, peers cannot deliver here).
	ready := func() bool { return g.ready.Load() && daemon.PID() != 0 }
	if err := g.serveMetrics(ctx, eg, metricsAddr, ready); err != nil {
		return fmt.Errorf("metrics endpoint %s: %w", metricsAddr, err)
	}
	if err := g.serveStatus(ctx, eg); err != nil {
		return err
	}
	if g.watchJail != nil {
		eg.Go(func() error { return g.watchJail(ctx) })
	}
	changes := make(chan change.Change, 4096)
	eg.Go(func() error { return det.Run(ctx, changes) })
	wakes := g.startSenders(ctx, runCtx, eg, det.Writing, det.Coming, det.Rescan)
	eg.Go(func() error { return g.journalChanges(ctx, changes, wakes) })
	if cmp != nil {
		eg.Go(func() error { return cmp.Run(ctx) })
	}
	return nil
}

// partialMaxAge is how long a partly received large file is kept across
// restarts of the agent, for the sender's next attempt to resume from it.
const partialMaxAge = 24 * time.Hour

// prepareReserved makes the reserved directories where the daemon puts
// temp files (the reserved directory itself) and partial files. Temp
// files a killed receiver left are removed (removeStaleTemp).
// Partial files (what an interrupted transfer of a large file had
// received, moved there by rsync) are kept while younger than maxAge by
// their ctime (when rsync moved them in), so that a transfer cut by this
// agent's restart resumes instead of starting over: rsync takes the
// partial file as the basis of its delta and verifies the whole file's
// checksum, so a partial file of the wrong file (the slot is shared by
// name, see rsync.Options.PartialDir) costs a resend, never the content.
// Anything else in the partial directory, and older partial files, are
// removed; a link in its place is removed, never followed.
//
// Everything is done through descriptors, never by path: the reserved
// directory is opened beneath the root with no symlink on the way
// (beneath.Open: a link in its place is refused), and each name in it
// with O_NOFOLLOW, so that a link swapped in while the agent starts
// (anyone who can write the root can make one) is removed or refused,
// never followed to a directory that the agent would then empty or chmod.
func (g *group) prepareReserved(maxAge time.Duration) error {
	resfd, err := beneath.Open(g.rootfd, index.ReservedDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open the reserved directory %s: %w", filepath.Join(g.root, index.ReservedDir), err)
	}
	defer unix.Close(resfd)
	// The daemon's temp directory: what arrives is nobody else's to read
	// before it is in place.
	if err := unix.Fchmod(resfd, 0o700); err != nil {
		return fmt.Errorf("prepare %s: %w", filepath.Join(g.root, index.ReservedDir), err)
	}
	if err := removeStaleTemp(resfd); err != nil {
		return fmt.Errorf("prepare %s: %w", filepath.Join(g.root, index.ReservedDir), err)
	}
	partial := filepath.Base(rsyncd.PartialDir)
	keep := func(_ string, st *unix.Stat_t) bool {
		return st.Mode&unix.S_IFMT == unix.S_IFREG && time.Since(time.Unix(st.Ctim.Unix())) < maxAge
	}
	if err := cleanDirAt(resfd, partial, keep); err != nil {
		return fmt.Errorf("prepare %s: %w", filepath.Join(g.root, index.ReservedDir, partial), err)
	}
	return nil
}

// legacyTempDir is where agents before the seventy-seventh session had the
// daemon put its temp files (rsyncd.TempDir): removed at start, with what
// a killed receiver left in it.
const legacyTempDir = "tmp"

// removeStaleTemp removes what the daemon's temp directory, the reserved
// directory itself (rsyncd.TempDir), holds at start: every entry but a
// directory (temp files a killed receiver left, a link put there), except
// the root's marker (index.MarkerFile), and the temp directory of older
// agents. Other directories stay: the partial directory has a rule of
// its own.
func removeStaleTemp(resfd int) error {
	dir, err := openDirAt(resfd, ".")
	if err != nil {
		return err
	}
	defer dir.Close()
	return emptyDir(dir, func(name string, st *unix.Stat_t) bool {
		return name == index.MarkerFile || st.Mode&unix.S_IFMT == unix.S_IFDIR && name != legacyTempDir
	})
}

// cleanDirAt makes name in dirfd a 0700 directory holding only the
// entries keep accepts (each by its name and lstat): anything else in its
// place (a file, a link) is removed, and so is every other entry,
// recursively, without following a link.
func cleanDirAt(dirfd int, name string, keep func(name string, st *unix.Stat_t) bool) error {
	var st unix.Stat_t
	switch err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return err
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			return err
		}
	}
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	dir, err := openDirAt(dirfd, name)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Fchmod(int(dir.Fd()), 0o700); err != nil {
		return err
	}
	return emptyDir(dir, keep)
}

// openDirAt opens the directory name in dirfd, refusing a link.
func openDirAt(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// emptyDir removes every entry of dir that keep does not accept
// (beneath.RemoveAllAt). An entry that cannot be lstat'ed (other than
// gone) fails it, and is not removed: keep never saw it, and in the
// reserved directory it may be the root's marker (removeStaleTemp).
func emptyDir(dir *os.File, keep func(name string, st *unix.Stat_t) bool) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	fd := int(dir.Fd())
	for _, n := range names {
		var st unix.Stat_t
		switch err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case errors.Is(err, unix.ENOENT):
			continue // gone already
		case err != nil:
			return fmt.Errorf("lstat %s: %w", n, err)
		case keep(n, &st):
			continue
		}
		if err := beneath.RemoveAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// racyWindow is the journal's RacyWindow for this root's filesystem:
// twice its timestamp tick (index.TimestampTick), 0 where every write gets
// a new ctime; a second where the tick cannot be measured.
func (g *group) racyWindow() time.Duration {
	fd, err := beneath.Open(g.rootfd, index.ReservedDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err == nil {
		defer unix.Close(fd)
		var tick time.Duration
		if tick, err = index.TimestampTick(fd); err == nil {
			if tick > 0 {
				g.log.Info("the data root's filesystem keeps coarse timestamps: a file written twice within one tick is told by its events", "tick", tick.String())
			}
			return 2 * tick
		}
	}
	g.log.Error(err, "cannot measure the data root's timestamp tick; assuming one of up to half a second")
	return time.Second
}

// unauthenticated reports that the group runs without a password (Run
// allows that only with --insecure): its daemon module asks for none, and
// its clients give none.
func (g *group) unauthenticated() bool { return g.cfg.Password == "" }

func (g *group) daemon() (*rsyncd.Daemon, error) {
	allow := make([]netip.Addr, len(g.peers))
	for i, p := range g.peers {
		allow[i] = p.daemon.Addr()
	}
	cfg := rsyncd.Config{
		Address:  g.self.daemon,
		StateDir: filepath.Join(g.stateDir, "rsyncd"),
		Modules:  []rsyncd.Module{{Name: g.cfg.Group.Name, Path: g.root, HostsAllow: allow}},
		Password: g.cfg.Password,
		NoAuth:   g.unauthenticated(),
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wrapper, err := daemonWrapper()
	if err != nil {
		return nil, err
	}
	return &rsyncd.Daemon{Config: cfg, Wrapper: wrapper, RsyncPath: g.rsyncPath, Log: g.log.WithName("rsyncd")}, nil
}

func (g *group) serveEndpoint(ctx context.Context, eg *errgroup.Group, rescan func(path string), cmp *antientropy.Comparer) error {
	members := make(map[string]netip.Addr, len(g.peers))
	for _, p := range g.peers {
		members[p.node] = p.daemon.Addr()
	}
	rcv := &receiver.Receiver{RootFD: g.rootfd, Root: g.root, Index: g.idx, Held: g.incoming, Exclude: g.exclude.Match, Rescan: rescan, Pending: g.journal.PendingAt, Renames: g.journal, PendingBelow: g.journal.PendingBelow, PendingFor: g.journal.PendingFor, Self: g.self.node,
		KeepDeletes: g.cfg.Group.Spec.Deletes == syncv1.DeletesKeep, Log: g.log.WithName("receiver")}
	rcv.Modes, rcv.Owners = receiver.KeepsAttrs(g.rootfd, rsyncd.TempDir)
	// Set before the journal records anything (journalChanges, after
	// this): the renames made here, for runs of peers that listed their
	// paths before they replayed them.
	g.journal.Logged = rcv.NoteRenames
	if !rcv.Modes || !rcv.Owners {
		g.log.Info("this data root does not keep modes or owners exactly as set (or the agent is not root): "+
			"a received file whose mode or owner then differs is not taken for a change made here",
			"modes", rcv.Modes, "owners", rcv.Owners)
	}
	// Before the detector's start scan: what arrived from runs announced
	// before a kill and never confirmed is not this member's own change.
	if held, err := rcv.Restore(); err != nil {
		return fmt.Errorf("restore the runs announced before the restart: %w", err)
	} else if held > 0 {
		g.log.Info("holding the paths of runs announced before the restart until their senders confirm them", "paths", held)
	}
	srv := &peer.Server{}
	pg := &peer.Group{Key: []byte(g.cfg.Password), Members: members, Handler: rcv}
	if cmp != nil {
		pg.Tree = quietAsker{TreeHandler: cmp, quiet: rcv.SenderQuiet}
	}
	srv.SetGroup(g.cfg.Group.Name, pg)
	ln, err := net.Listen("tcp", g.self.endpoint.String())
	if err != nil {
		return fmt.Errorf("agent-to-agent endpoint: %w", err)
	}
	serve(ctx, eg, ln, srv.Handler())
	return nil
}

func (g *group) detector() (*detect.Detector, error) {
	patterns := make([]string, len(g.cfg.Group.Spec.Exclude))
	for i, p := range g.cfg.Group.Spec.Exclude {
		patterns[i] = string(p)
	}
	m, err := exclude.Compile(patterns)
	if err != nil {
		return nil, err
	}
	g.exclude = m
	opts := source.Options{Root: g.root, Exclude: func(rel string) bool { return m.Match(rel, false) },
		Quiet: []string{rsyncd.TempDir, rsyncd.PartialDir}, OwnPID: ownPID()}
	src, kind := newSource(opts, g.settle(), g.log)
	g.status.setSource(kind)
	d := &detect.Detector{Root: g.root, HeldRoot: &g.rootfd, Index: g.idx, Source: src, Exclude: m, Settle: g.settle(),
		ScanInterval: g.cfg.ScanInterval, Incoming: g.incoming, Racy: g.journal.Racy, Log: g.log.WithName("detect"), AllowMassDelete: g.cfg.AllowMassDelete, MaxDeleteShare: g.cfg.MaxDeleteShare,
		Scanned: func(reason string) {
			for _, p := range g.peers {
				g.metrics.rescans.WithLabelValues(g.cfg.Group.Name, p.node, reason).Inc()
			}
		}}
	if ri := g.cfg.Group.Spec.ResyncInterval; ri != nil {
		d.ResyncInterval = ri.Duration
	}
	return d, nil
}

// ownPID reports whether a process is this agent: the renames, removals
// and clears it applies for peers are its own (fanotify names the thread
// group, so any goroutine's thread counts). An in-process test's own
// writes read as the agent's too; Echo is a hint the index overrules
// (change.Change.Echo), so they are still sent.
func ownPID() func(pid int32) bool {
	self := int32(os.Getpid())
	return func(pid int32) bool { return pid == self }
}

func (g *group) settle() time.Duration {
	if s := g.cfg.Group.Spec.Settle; s != nil {
		return s.Duration
	}
	return 250 * time.Millisecond
}

// rsyncOptions are the push clients' options for spec: its transport's
// compress and bandwidthLimit (bytes per second), and the reserved temp
// and (where this rsync resumes from it) partial directories, absolute under the chrooted module (the module
// root's .jailsync, whatever directory a file goes to: a relative
// --temp-dir is looked up from each file's directory).
func rsyncOptions(spec syncv1.SyncGroupSpec, resumes bool) rsync.Options {
	opts := rsync.Options{Compress: spec.Transport.Compress, TempDir: "/" + rsyncd.TempDir}
	if resumes {
		opts.PartialDir = "/" + rsyncd.PartialDir
	}
	if bl := spec.Transport.BandwidthLimit; bl != nil {
		opts.BandwidthLimit = bl.Value()
	}
	return opts
}

// startSenders starts one sender per peer and returns their wake channels;
// writing, detecting and rescan are the detector's Writing, Coming and
// Rescan (sender.Sender.Writing, Coming, Rescan).
func (g *group) startSenders(ctx, runCtx context.Context, eg *errgroup.Group, writing func() time.Time, detecting func() bool, rescan func(string)) []chan struct{} {
	spec := g.cfg.Group.Spec
	opts := rsyncOptions(spec, g.resumes)
	opts.RsyncPath = g.rsyncPath
	client := peer.NewClient(g.cfg.Node, []byte(g.cfg.Password), g.self.daemon.Addr(), 30*time.Second)
	user := rsyncd.DefaultUser
	if g.unauthenticated() {
		user = "" // the peers' modules ask for no user (rsyncd.Config.NoAuth)
	}
	links := g.linkNames()
	pushing := sender.NewPushing() // one lone change goes to every peer at once
	lstats := new(sender.Lstats)   // and one burst's paths are looked at once
	var wakes []chan struct{}
	crossed := g.crossed(&wakes)
	// More changes are on their way: in the detector, or taken by the
	// journal's writer and not yet committed.
	coming := func() bool { return g.journaling.Load() || detecting() }
	crossedAfter := g.crossedAfter()
	for _, p := range g.peers {
		s := &sender.Sender{
			Group: g.cfg.Group.Name, Peer: p.node, Root: g.root, Journal: g.journal,
			Target:  rsync.Target{Addr: p.daemon, Module: g.cfg.Group.Name, User: user, Password: g.cfg.Password, Source: g.self.daemon.Addr()},
			Options: opts, Endpoint: p.endpoint, Client: client, KeepDeletes: spec.Deletes == syncv1.DeletesKeep,
			Replayed:   func() []peer.ReplayPos { return receiver.ReplayPositions(g.idx.DB()) },
			BackoffCap: g.cfg.RetryBackoffCap, Links: links, Lstats: lstats, Pushing: pushing, Journaling: g.journaling.Load, Writing: writing, Coming: coming, Rescan: rescan,
			Report: func(r sender.Run) {
				g.status.report(r)
				g.metrics.run(g.cfg.Group.Name, r)
			},
			Crossed: crossed, CrossedAfter: crossedAfter, Incoming: g.incoming.Has, Carrying: g.incoming.Carries,
			Log:  g.log.WithName("sender").WithValues("peer", p.node),
			Wake: make(chan struct{}, 1), RunContext: runCtx,
		}
		wakes = append(wakes, s.Wake)
		g.senders = append(g.senders, s)
		g.status.watch(p.node, s.Transferring)
		eg.Go(func() error {
			if spec.Suspend {
				<-ctx.Done()
				return nil
			}
			return s.Start(ctx)
		})
	}
	return wakes
}

// crossedStep staggers the members' sending of a file two of them wrote at
// once (sender.Sender.CrossedAfter): a member waits its place in the
// group's node names times this, long enough for a small file's run of the
// member before it to land.
const crossedStep = 250 * time.Millisecond

// crossedAfter is this member's wait before it sends to every peer the
// version it ended with of a file that it and a peer wrote at once: its
// place among the members' node names (sorted) times crossedStep. The
// first member sends at once; the second, which may hold the first's
// version by then, sends that one.
func (g *group) crossedAfter() time.Duration {
	rank := 0
	for _, p := range g.peers {
		if p.node < g.cfg.Node {
			rank++
		}
	}
	return time.Duration(rank) * crossedStep
}

// crossed is the senders' sender.Sender.Crossed: it journals the paths for
// every peer and wakes the senders (wakes, filled once every sender is
// made).
func (g *group) crossed(wakes *[]chan struct{}) func(paths []string) error {
	names := make([]string, len(g.peers))
	for i, p := range g.peers {
		names[i] = p.node
	}
	return func(paths []string) error {
		if err := g.journal.Again(names, change.Write, paths); err != nil {
			return err
		}
		wake(*wakes)
		return nil
	}
}

// wake signals every sender's wake channel without blocking: one signal
// pending is enough, its sender reads the journal when it runs.
func wake(wakes []chan struct{}) {
	for _, w := range wakes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// linkNames is the senders' lookup of a hard-linked file's other names: the
// index's, less the names the group excludes (an index from before an
// exclude was added can still list them).
func (g *group) linkNames() func(ino uint64, limit int) []string {
	log := g.log.WithName("sender")
	return func(ino uint64, limit int) []string {
		names, err := g.idx.Links(ino, limit)
		if err != nil {
			log.Error(err, "look up hard links; the file goes without its other names")
			return nil
		}
		return slices.DeleteFunc(names, func(rel string) bool { return g.exclude.Match(rel, false) })
	}
}

// journalChanges journals ready changes in batches (what is waiting when
// the first arrives, up to 10,000) and wakes the senders. While it holds
// changes not yet committed, or more wait behind them, g.journaling says
// so: the senders' gathering then counts no pause in a burst.
func (g *group) journalChanges(ctx context.Context, in <-chan change.Change, wakes []chan struct{}) error {
	names := make([]string, len(g.peers))
	for i, p := range g.peers {
		names[i] = p.node
	}
	batch := make([]change.Change, 0, 1024)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-in:
			g.journaling.Store(true)
			batch = append(batch[:0], c)
		more:
			for len(batch) < 10_000 {
				select {
				case c := <-in:
					batch = append(batch, c)
				default:
					break more
				}
			}
			if err := g.journal.Record(g.rootfd, names, batch); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			// Still true when more changes wait: the writes go on.
			g.journaling.Store(len(in) > 0)
			g.status.changed(len(batch))
			// For joining runs with the writes that made them (docs/benchmarks.md).
			g.log.V(1).Info("changes journaled", "changes", len(batch), "first", batch[0].Path)
			// Each one, for tracing what this member took for its own
			// (a received file sent back).
			if v := g.log.V(2); v.Enabled() {
				for _, c := range batch {
					v.Info("change journaled", "path", c.Path, "op", c.Op.String(), "old", c.OldPath, "finished", c.Finished, "echo", c.Echo)
				}
			}
			wake(wakes)
		}
	}
}
