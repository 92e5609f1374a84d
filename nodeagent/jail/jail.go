package jail

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/beneath"
)

// ErrNotRunning is returned when no jail of that name runs on this host.
var ErrNotRunning = errors.New("jail is not running")

// Info is what the kernel says of a running jail.
type Info struct {
	JID  int
	Name string
	// Path is the jail's root directory on the host.
	Path string
}

// LookupFunc finds a running jail by name. Get is the FreeBSD one.
type LookupFunc func(name string) (Info, error)

// Tracker resolves one group's data root inside a jail.
type Tracker struct {
	// Lookup finds the jail; Get on FreeBSD.
	Lookup LookupFunc
	// Name is the jail's name (spec.jail).
	Name string
	// Path is the data directory inside the jail (spec.path).
	Path string

	last Info
}

// Resolve returns the data root on the host and whether the jail restarted
// (its jid changed) since the last call. The jail's root is resolved with
// symlinks followed on the host; the path inside it must be a real
// directory reached without any symlink.
func (t *Tracker) Resolve() (root string, restarted bool, err error) {
	info, err := t.Lookup(t.Name)
	if err != nil {
		return "", false, fmt.Errorf("jail %q: %w", t.Name, err)
	}
	restarted = t.last.JID != 0 && t.last.JID != info.JID
	t.last = info

	jailRoot, err := filepath.EvalSymlinks(info.Path)
	if err != nil {
		return "", restarted, fmt.Errorf("jail %q root %s: %w", t.Name, info.Path, err)
	}
	rel := strings.TrimPrefix(filepath.Clean(t.Path), "/")
	if rel == "" {
		return "", restarted, fmt.Errorf("jail %q: the data path must be a directory below the jail's root", t.Name)
	}
	rootfd, err := beneath.OpenRoot(jailRoot)
	if err != nil {
		return "", restarted, err
	}
	defer unix.Close(rootfd)
	fd, err := beneath.Open(rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", restarted, fmt.Errorf("jail %q: data path %s: %w (use the real path inside the jail)", t.Name, t.Path, err)
	}
	unix.Close(fd)
	return filepath.Join(jailRoot, rel), restarted, nil
}

// ErrMoved is returned by Check when the jail's data root resolves to
// another directory than the one the agent syncs.
var ErrMoved = errors.New("the jail's data root moved")

// Check resolves the data root again and refuses it when it is no longer
// root, the directory the agent syncs: the jail was restarted with another
// root. A jail that is not running now, or whose root cannot be resolved
// for the moment, leaves root as it is: its directory on the host still
// holds the data, and the agent's own root checks (identity, the directory
// held open) watch it.
func (t *Tracker) Check(root string) error {
	now, _, err := t.Resolve()
	if err != nil {
		return nil
	}
	if now != root {
		return fmt.Errorf("%w: jail %q now has its data at %s, not %s: restart the agent to sync the jail's new root", ErrMoved, t.Name, now, root)
	}
	return nil
}

// Watch calls Check every interval until ctx ends or Check fails.
func (t *Tracker) Watch(ctx context.Context, root string, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := t.Check(root); err != nil {
			return err
		}
	}
}
