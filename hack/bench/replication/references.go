//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jailsync/jailsync/nodeagent/rsync"
	"github.com/jailsync/jailsync/nodeagent/rsyncd"
)

// lowerBound: one `rsync -a` per peer after the writes, the three in
// parallel. Nothing watches; push is the whole transfer.
func lowerBound() (*rig, error) {
	d, err := startRefDaemons("bench-lb-")
	if err != nil {
		return nil, err
	}
	return &rig{
		src: d.src, peers: d.dirs, cleanup: d.close, cpu: childrenCPU, split: d.split,
		push: func(names []string) error {
			what := []string{"."}
			if names != nil {
				what = names
			}
			return parallel(len(d.urls), func(i int) error {
				args := append([]string{"-a", "--relative", "--sockopts=TCP_NODELAY", "--address=127.0.3.1"}, what...)
				return rsyncTo(d.src, append(args, d.urls[i])...)
			})
		},
		mirror: func() error {
			return parallel(len(d.urls), func(i int) error {
				return rsyncTo(d.src, "-a", "--delete", "--sockopts=TCP_NODELAY", "--address=127.0.3.1", "./", d.urls[i])
			})
		},
	}, nil
}

// filesFromFloor: what the lower bound does, one run per peer after the
// writes, the three in parallel, but through jailsync's own client
// (nodeagent/rsync.Push: --files-from=- with --from0, every name prefixed
// with "./", itemized output parsed per file, temp files in the reserved
// directory, rsyncd.TempDir). The issue prescribes that
// interface; this figure is its floor, so that the table separates what
// rsync's --files-from costs (it reads the list one byte per read(2) and
// poll(2), io.c read_line, and resolves every name from the root again)
// from what the agent adds. The names are read from the directory.
func filesFromFloor() (*rig, error) {
	d, targets, err := interfaceDaemons("bench-ff-")
	if err != nil {
		return nil, err
	}
	return &rig{
		src: d.src, peers: d.dirs, cleanup: d.close, cpu: childrenCPU, split: d.split,
		push: func(names []string) error {
			names, err := namesOrAll(d.src, names)
			if err != nil {
				return err
			}
			return pushEach(d, targets, names)
		},
	}, nil
}

// floorOptions are the floors' rsync options, the same for every peer: the
// temp directory of the agent's runs, as the agent keeps it (the
// issue prescribes it too, and it costs the receiver: a quarter of a
// daemon's CPU on 4 KiB files, measured). The list is on the client's
// standard input, as the agent's is since the twenty-ninth session (from
// the twenty-fifth, a long list was handed to the peer, which then chose
// the names the client sent: see sender.Sender.run).
func floorOptions() rsync.Options {
	return rsync.Options{TempDir: "/" + rsyncd.TempDir}
}

// pushEach pushes names to every peer through a client of its own, the
// three in parallel.
func pushEach(d *refDaemons, targets []rsync.Target, names []string) error {
	return parallel(len(targets), func(i int) error {
		_, err := rsync.Push(context.Background(), d.src, names, targets[i], floorOptions())
		return err
	})
}

// interfaceDaemons starts the reference daemons with the temp directory
// of floorOptions in each, and returns them with their targets for
// jailsync's client.
func interfaceDaemons(prefix string) (*refDaemons, []rsync.Target, error) {
	d, err := startRefDaemons(prefix)
	if err != nil {
		return nil, nil, err
	}
	for _, dir := range d.dirs {
		if err := os.MkdirAll(filepath.Join(dir, rsyncd.TempDir), 0o700); err != nil {
			d.close()
			return nil, nil, err
		}
	}
	targets := make([]rsync.Target, len(d.urls))
	for i := range targets {
		targets[i] = rsync.Target{
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 2)}), 18401),
			Module: "m", Source: netip.AddrFrom4([4]byte{127, 0, 3, 1}),
		}
	}
	return d, targets, nil
}

// namesOrAll is names, or when nil every name in dir (a makespan
// workload's push after the writes).
func namesOrAll(dir string, names []string) ([]string, error) {
	if names != nil {
		return names, nil
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names, nil
}

// preparedFloor: the floor of --files-from with its clients started ahead,
// as the agent starts them (rsync.Prepare): before each push, one client
// per peer has already started, connected, authenticated and been forked
// a receiver by the daemon, and waits for its list; the push hands it the
// names, the three in parallel, and the next three start once all three
// have returned (in the gap before the next file). No detection, no
// journal, no announcement: on single files, the least that any agent
// calling rsync the prescribed way can take from a close to the last
// peer's copy, on this machine.
func preparedFloor() (*rig, error) {
	d, targets, err := interfaceDaemons("bench-pf-")
	if err != nil {
		return nil, err
	}
	// Each peer's next client, started in the background once the pushes
	// have returned (so that its start is never inside a measured latency,
	// as the agent's is not), is taken from its channel by the next push.
	next := make([]chan *rsync.Warm, len(targets))
	prepare := func(i int) {
		w, err := rsync.Prepare(d.src, targets[i], floorOptions())
		if err != nil {
			fmt.Fprintf(os.Stderr, "[bench] preparedFloor: %v\n", err)
		}
		next[i] <- w // nil on failure: that push fails
	}
	for i := range next {
		next[i] = make(chan *rsync.Warm, 1)
		go prepare(i)
	}
	return &rig{
		src: d.src, peers: d.dirs, cpu: childrenCPU, split: d.split,
		cleanup: func() {
			for _, c := range next {
				if w := <-c; w != nil {
					w.Close()
				}
			}
			d.close()
		},
		push: func(names []string) error {
			names, err := namesOrAll(d.src, names)
			if err != nil {
				return err
			}
			err = parallel(len(targets), func(i int) error {
				w := <-next[i]
				if w == nil {
					return fmt.Errorf("no prepared client for %s", targets[i].Addr)
				}
				_, err := w.Push(context.Background(), names)
				return err
			})
			// The next clients start once all three pushes are over: started
			// beside one still pushing, they take the CPU it waits for.
			for i := range next {
				go prepare(i)
			}
			return err
		},
	}, nil
}

// oldScript emulates the hand-made setup of shared/origin: one thread per
// peer walks the queue of changed files in order and, for each, checks the
// size, sleeps 1 s (Perl's sleep(1.5) truncates to whole seconds), checks
// again, and runs `rsync -raz --progress --size-only FILE
// rsync://peer/share/FILE` (here with the bench's --address and
// TCP_NODELAY, so that only the method differs). The events come from
// inotify IN_CLOSE_WRITE, a faster and cheaper stand-in for tailing
// praudit: the emulation is kind to the script.
func oldScript() (*rig, error) {
	d, err := startRefDaemons("bench-old-")
	if err != nil {
		return nil, err
	}
	// Non-blocking, and read through an *os.File: Go's poller then ends the
	// reader's Read when cleanup closes it (a blocking read would not end).
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		d.close()
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, d.src, unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		d.close()
		return nil, err
	}
	events := os.NewFile(uintptr(fd), "inotify")
	queues := make([]chan string, len(d.urls))
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan string, 1<<16)
		wg.Go(func() {
			for name := range queues[i] {
				path := filepath.Join(d.src, name)
				for {
					before, err1 := os.Stat(path)
					time.Sleep(time.Second)
					after, err2 := os.Stat(path)
					if err1 != nil || err2 != nil || before.Size() == after.Size() {
						break
					}
				}
				if err := rsyncTo(d.src, "-raz", "--progress", "--size-only", "--sockopts=TCP_NODELAY", "--address=127.0.3.1", "./"+name, d.urls[i]+name); err != nil {
					fmt.Fprintln(os.Stderr, "old script:", err)
				}
			}
		})
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := events.Read(buf)
			if err != nil || n <= 0 {
				for _, q := range queues {
					close(q)
				}
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				// struct inotify_event: wd, mask, cookie, len, then len bytes of name.
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l]), "\x00")
				off += unix.SizeofInotifyEvent + l
				if name == "" {
					continue
				}
				for _, q := range queues {
					q <- name
				}
			}
		}
	}()
	return &rig{
		src: d.src, peers: d.dirs, cpu: childrenCPU,
		cleanup: func() {
			events.Close() // ends the reader, which closes the queues
			wg.Wait()
			d.close()
		},
	}, nil
}

// lsyncd: Debian's lsyncd 2.2 with one default.rsync sync per peer in one
// process, delay = 0, no startup sync (the directories start empty).
func lsyncd() (*rig, error) {
	if _, err := exec.LookPath("lsyncd"); err != nil {
		return nil, fmt.Errorf("lsyncd not installed (apt-get install lsyncd): %w", err)
	}
	d, err := startRefDaemons("bench-lsyncd-")
	if err != nil {
		return nil, err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "settings { nodaemon = true, logfile = %q, insist = true }\n", filepath.Join(d.base, "lsyncd.log"))
	for _, u := range d.urls {
		fmt.Fprintf(&conf, "sync { default.rsync, source = %q, target = %q, delay = 0, init = false,\n"+
			"  rsync = { archive = true, _extra = { \"--address=127.0.3.1\", \"--sockopts=TCP_NODELAY\" } } }\n", d.src, u)
	}
	path := filepath.Join(d.base, "lsyncd.lua")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		d.close()
		return nil, err
	}
	cmd := exec.Command("lsyncd", path)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		d.close()
		return nil, err
	}
	pid := cmd.Process.Pid
	return &rig{
		src: d.src, peers: d.dirs,
		cpu: func() float64 { return procCPU(pid) }, hwm: func() int64 { return procHWM(pid) },
		cleanup: func() { stop(cmd, 5*time.Second); d.close() },
	}, nil
}

// clsync: Debian's clsync, one instance per peer (it has one destination),
// -M rsyncdirect with no collect or sync delays (-t 0 -w 0 -T 0), no
// initial sync. Its default rsync arguments, plus the bench's --address
// and TCP_NODELAY.
func clsync() (*rig, error) {
	if _, err := exec.LookPath("clsync"); err != nil {
		return nil, fmt.Errorf("clsync not installed (apt-get install clsync): %w", err)
	}
	d, err := startRefDaemons("bench-clsync-")
	if err != nil {
		return nil, err
	}
	var cmds []*exec.Cmd
	cleanup := func() {
		for _, c := range cmds {
			stop(c, 5*time.Second)
		}
		d.close()
	}
	for i, u := range d.urls {
		log, err := os.Create(filepath.Join(d.base, fmt.Sprintf("clsync%d.log", i)))
		if err != nil {
			cleanup()
			return nil, err
		}
		cmd := exec.Command("clsync", "-M", "rsyncdirect", "-W", d.src, "-S", "/usr/bin/rsync", "-D", strings.TrimSuffix(u, "/"),
			"-t", "0", "-w", "0", "-T", "0", "--skip-initialsync", "-l", fmt.Sprintf("peer%d", i),
			"--", "-aH", "--delete", "--address=127.0.3.1", "--sockopts=TCP_NODELAY",
			"--exclude-from", "%EXCLUDE-LIST-PATH%", "--include-from", "%INCLUDE-LIST-PATH%", "--exclude=*", "%watch-dir%/", "%destination-dir%/")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			log.Close()
			cleanup()
			return nil, err
		}
		log.Close()
		cmds = append(cmds, cmd)
	}
	pids := func() []int {
		var ps []int
		for _, c := range cmds {
			ps = append(ps, c.Process.Pid)
		}
		return ps
	}
	return &rig{
		src: d.src, peers: d.dirs, cleanup: cleanup,
		cpu: func() float64 { return procCPU(pids()...) }, hwm: func() int64 { return procHWM(pids()...) },
	}, nil
}
