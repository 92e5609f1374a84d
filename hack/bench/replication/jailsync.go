//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// jailsyncRig starts four standalone agents on 127.0.3.1-4:18410 (the first
// is the writer), each with its own root on its own tmpfs and its own
// managed rsync daemon (TCP_NODELAY, like the references' daemons). The
// state directories (journal, index) are on the machine's disk, as in a
// deployment. CPU and VmHWM are the writer's agent, with the rsync clients
// it ran; recvCPU and recvHWM the three receivers' agents, read the same
// way (their managed rsync daemons, children they reap only when they
// stop, are not in it: machineCpuSeconds has them).
func jailsyncRig(nodeagent string) func() (*rig, error) {
	return func() (*rig, error) {
		base, err := os.MkdirTemp("", "bench-js-")
		if err != nil {
			return nil, err
		}
		var hosts []*jsHost
		for i := range 4 {
			hosts = append(hosts, &jsHost{root: filepath.Join(base, fmt.Sprintf("h%d", i), "root"), state: filepath.Join(base, fmt.Sprintf("state%d", i))})
		}
		// JAILSYNC_BENCH_AGENT_LOGS=DIR keeps the agents' logs (at -v) there,
		// one folder per rig, for finding where a workload's time goes.
		keep := os.Getenv("JAILSYNC_BENCH_AGENT_LOGS")
		// JAILSYNC_BENCH_PROFILE=DIR writes a CPU profile of every agent
		// there for every rig (the writer's as RIG.pprof, the receivers' as
		// RIG.h1.pprof and so on), 3 s from its start, which covers one
		// burst, or JAILSYNC_BENCH_PROFILE_SECONDS; `go tool pprof` merges
		// them.
		prof := os.Getenv("JAILSYNC_BENCH_PROFILE")
		cleanup := func() { stopHosts(hosts, base, keep) }
		if err := startHosts(nodeagent, base, hosts, keep != "", prof != ""); err != nil {
			cleanup()
			return nil, err
		}
		if prof != "" {
			wait := profileHosts(hosts, prof, filepath.Base(base))
			cleanup0 := cleanup
			cleanup = func() { wait(); cleanup0() }
		}
		return hostsRig(hosts, cleanup), nil
	}
}

// jsHost is one agent of jailsyncRig: its root, its state directory and
// its process.
type jsHost struct {
	root, state string
	cmd         *exec.Cmd
}

// benchManifest is the group of hosts with the bench's password, as the
// agents read it (--config).
func benchManifest(hosts []*jsHost) string {
	var members strings.Builder
	for i := range hosts {
		fmt.Fprintf(&members, "  - node: h%d\n    address: 127.0.3.%d:18410\n", i, i+1)
	}
	return "apiVersion: sync.jailsync.io/v1alpha1\nkind: SyncGroup\nmetadata:\n  name: bench\nspec:\n  path: /data\n  members:\n" + members.String() +
		"  transport:\n    secretRef:\n      name: t\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: t\nstringData:\n  rsync-password: bench\n"
}

// startHosts writes the group's manifest into base and starts an agent for
// each host, its root on a tmpfs of its own and its log in base (at -v
// when verbose; with --profile when profile).
func startHosts(nodeagent, base string, hosts []*jsHost, verbose, profile bool) error {
	config := filepath.Join(base, "group.yaml")
	if err := os.WriteFile(config, []byte(benchManifest(hosts)), 0o600); err != nil {
		return err
	}
	for i, h := range hosts {
		if err := mount(filepath.Dir(h.root)); err != nil {
			return err
		}
		if err := os.MkdirAll(h.root, 0o755); err != nil {
			return err
		}
		log, err := os.Create(filepath.Join(base, fmt.Sprintf("agent%d.log", i)))
		if err != nil {
			return err
		}
		args := []string{"run", "--config", config, "--node", fmt.Sprintf("h%d", i), "--root", h.root, "--state-dir", h.state}
		if verbose {
			args = append(args, "-v")
		}
		if profile {
			args = append(args, "--profile")
		}
		h.cmd = exec.Command(nodeagent, args...)
		h.cmd.Stdout, h.cmd.Stderr = log, log
		err = h.cmd.Start()
		log.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// stopHosts stops the agents and unmounts their roots, keeps their logs
// and their daemons' in keep (if set), and removes base.
func stopHosts(hosts []*jsHost, base, keep string) {
	for _, h := range hosts {
		stop(h.cmd, 15*time.Second)
		unmount(filepath.Dir(h.root))
	}
	if keep != "" {
		dst := filepath.Join(keep, filepath.Base(base))
		if err := os.MkdirAll(dst, 0o755); err == nil {
			for i := range hosts {
				name := fmt.Sprintf("agent%d.log", i)
				_ = os.Rename(filepath.Join(base, name), filepath.Join(dst, name))
				// The daemon's log: one line per connection.
				_ = os.Rename(filepath.Join(hosts[i].state, "rsyncd", "rsyncd.log"), filepath.Join(dst, fmt.Sprintf("rsyncd%d.log", i)))
			}
		}
	}
	_ = os.RemoveAll(base)
}

// profileHosts profiles every agent into dir as name (profileAgent), for
// JAILSYNC_BENCH_PROFILE_SECONDS or 3 s, and returns what waits for the
// profiles.
func profileHosts(hosts []*jsHost, dir, name string) (wait func()) {
	seconds := 3
	if v, err := strconv.Atoi(os.Getenv("JAILSYNC_BENCH_PROFILE_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	var wg sync.WaitGroup
	for i := range hosts {
		name := name
		if i > 0 {
			name += fmt.Sprintf(".h%d", i)
		}
		wg.Go(func() { profileAgent(fmt.Sprintf("127.0.3.%d:18412", i+1), dir, name, seconds) })
	}
	return wg.Wait
}

// hostsRig is the rig of started hosts, the first the writer.
func hostsRig(hosts []*jsHost, cleanup func()) *rig {
	pid := hosts[0].cmd.Process.Pid
	var recv []int
	for _, h := range hosts[1:] {
		recv = append(recv, h.cmd.Process.Pid)
	}
	r := &rig{
		src: hosts[0].root, cleanup: cleanup,
		cpu: func() float64 { return procCPU(pid) }, hwm: func() int64 { return procHWM(pid) },
		recvCPU: func() float64 { return procCPU(recv...) }, recvHWM: func() int64 { return procHWM(recv...) },
		split: func() map[string]float64 { return cpuByPart(hosts) },
	}
	for _, h := range hosts[1:] {
		r.peers = append(r.peers, h.root)
	}
	return r
}

// cpuByPart is the CPU seconds of the writer's and the receivers' agents,
// the writer's rsync clients and each side's rsync daemons.
func cpuByPart(hosts []*jsHost) map[string]float64 {
	m := map[string]float64{}
	for i, h := range hosts {
		role := "receiver"
		if i == 0 {
			role = "writer"
		}
		self, children := procTimes(h.cmd.Process.Pid)
		m[role+" agent"] += self
		if i == 0 {
			m["writer rsync clients"] += children
		}
		if data, err := os.ReadFile(filepath.Join(h.state, "rsyncd", "rsyncd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				self, children := procTimes(pid)
				m[role+" rsync daemon"] += self + children
			}
		}
	}
	return m
}

// profileAgent saves seconds of the CPU profile of the agent whose
// metrics listen on addr as DIR/NAME.pprof, then its allocations as
// DIR/NAME.allocs.pprof.
func profileAgent(addr, dir, name string, seconds int) {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	for range 100 {
		resp, err := http.Get(url)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		defer resp.Body.Close()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return
		}
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			return
		}
		_, _ = io.Copy(f, resp.Body)
		f.Close()
		// And what it allocated since it started (the rig's start, the
		// probes and the workload).
		if resp, err := http.Get("http://" + addr + "/debug/pprof/allocs"); err == nil {
			defer resp.Body.Close()
			if f, err := os.Create(filepath.Join(dir, name+".allocs.pprof")); err == nil {
				_, _ = io.Copy(f, resp.Body)
				f.Close()
			}
		}
		return
	}
}
