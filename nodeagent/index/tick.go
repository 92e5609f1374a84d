package index

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// tickProbe is the file TimestampTick writes, inside the reserved directory.
const tickProbe = ".tick-probe"

// maxTick bounds the measurement of a coarse tick (FAT keeps 2 s).
const maxTick = 3 * time.Second

// TimestampTick measures how long a file's ctime may stay the same across
// writes on the filesystem of the directory dirfd (the root's reserved
// directory): 0 where every write, each followed by an fstat as the agent's
// own lstat follows a change, gets a new ctime (nanosecond timestamps, or
// Linux's multigrain timestamps, 6.13 and later for ext4, xfs, btrfs and
// tmpfs), else the tick itself: 1/HZ for FreeBSD's default
// vfs.timestamp_precision, a jiffy for Linux's coarse clock. It writes and
// removes a probe file in dirfd.
func TimestampTick(dirfd int) (time.Duration, error) {
	fd, err := unix.Openat(dirfd, tickProbe, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("timestamp probe: %w", err)
	}
	defer func() {
		unix.Close(fd)
		_ = unix.Unlinkat(dirfd, tickProbe, 0)
	}()
	ctime := func(i int) (int64, error) {
		if _, err := unix.Pwrite(fd, []byte{byte(i)}, 0); err != nil {
			return 0, fmt.Errorf("timestamp probe: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, fmt.Errorf("timestamp probe: %w", err)
		}
		return st.Ctim.Nano(), nil
	}
	// until writes until the ctime differs from prev, for at most maxTick,
	// and returns the new ctime and how long that took.
	until := func(prev int64) (int64, time.Duration, error) {
		start := time.Now()
		for i := 0; time.Since(start) < maxTick; i++ {
			ct, err := ctime(i)
			if err != nil || ct != prev {
				return ct, time.Since(start), err
			}
		}
		return prev, maxTick, nil
	}
	prev, err := ctime(0)
	if err != nil {
		return 0, err
	}
	for i := 1; i < 64; i++ {
		ct, err := ctime(i)
		if err != nil {
			return 0, err
		}
		if ct != prev {
			prev = ct
			continue
		}
		// Two writes in one tick: from the next change of the ctime (the
		// start of a tick) to the one after is a whole tick.
		if prev, _, err = until(ct); err != nil {
			return 0, err
		}
		_, tick, err := until(prev)
		return tick, err
	}
	return 0, nil
}
