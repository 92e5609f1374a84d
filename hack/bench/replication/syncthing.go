//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stNodes is how many Syncthing instances the rig runs: the writer
// (instance 0) and the three receivers.
const stNodes = 4

// stBEPPort is the sync protocol (BEP) port and stGUIPort the REST API's,
// each instance on its own address 127.0.3.(i+1).
const (
	stBEPPort = 18420
	stGUIPort = 18421
)

var stDeviceID = regexp.MustCompile(`^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$`)

func stAddr(i int) string { return fmt.Sprintf("127.0.3.%d", i+1) }

// syncthing: Debian's Syncthing 1.19, four headless instances (the writer
// and three receivers), each with its own home (config, keys, database)
// under one temp dir and its folder on its own tmpfs, all four sharing one
// sendreceive folder "bench". Instance i listens for BEP on
// tcp://127.0.3.(i+1):18420 and serves its REST API (used only to wait for
// the connections) on 127.0.3.(i+1):18421. Global and local discovery,
// relays, NAT traversal (UPnP, NAT-PMP, and with it STUN), usage and crash
// reporting and upgrades are off, and proxy variables are not passed on,
// so nothing but those loopback addresses is contacted.
//
// Instance i dials only the instances before it, at their explicit
// addresses tcp://127.0.3.(j+1):18420, and lists the later ones as
// "dynamic", which with discovery off resolves to no address: they dial
// it. When two instances dial each other at once, Syncthing 1.19 can keep
// a connection the other side has dropped and wait 20 s for its Hello (seen
// in trials: some pairs connected 20 to 40 s late); one dialling side per
// pair avoids the race. Syncthing dials both from its listening address
// (SO_REUSEPORT) and, in parallel, from the kernel's choice, and keeps the
// first to connect: a connection may come from 127.0.0.1, still loopback.
//
// Delays, at the lowest Syncthing allows:
//   - fsWatcherEnabled with fsWatcherDelayS = 1. The field is an integer
//     number of seconds and 0 (or less) turns the watcher off, so 1 s is
//     Syncthing's floor. Its aggregator fires every fsWatcherDelayS and
//     scans the events that have been quiet for half of it: a change is
//     scanned 0.5 to 1.5 s after it was made (1 s for a lone change, whose
//     event starts the timer), up to 6 s for a file that keeps changing.
//     This is the floor of every Syncthing figure: nothing else adds as
//     much.
//   - rescanIntervalS = 3600, so that no periodic full scan interferes.
//   - pullerPauseS = 1 (0 means the 60 s default): the retry after a failed
//     pull, the smallest non-default value.
//   - setLowPriority = false: Syncthing otherwise renices itself, which on
//     a shared 2-core machine would slow it against the bench rather than
//     measure it.
//   - reconnectionIntervalS = 5, its floor (Syncthing raises anything
//     lower to 5; its connection loop also waits at least 5 s between
//     rounds): a dial made before its peer listened is retried within 5 s,
//     so the rig is up 1 to 7 s after the start.
//   - compression "never" (random data on loopback; the lower bound's
//     rsync does not compress either), progress and scan progress
//     updates off.
//
// Left at their defaults: copiers, hashers, pullerMaxPendingKiB,
// maxConcurrentWrites, fsync (a no-op on tmpfs), block and pull order.
// Fixed in the code and not configurable: the index sender waits 250 ms
// after each index update it sends, to batch the next ones.
func syncthing() (*rig, error) {
	if _, err := exec.LookPath("syncthing"); err != nil {
		return nil, fmt.Errorf("syncthing not installed (apt-get install syncthing): %w", err)
	}
	base, err := os.MkdirTemp("", "bench-syncthing-")
	if err != nil {
		return nil, err
	}
	var (
		cmds   []*exec.Cmd
		mounts []string
	)
	cleanup := func() {
		// A monitor forwards SIGTERM to its child and waits for it; if it
		// had to be killed, its child is left, an orphan: kill it too.
		for _, c := range cmds {
			child := stChild(c.Process.Pid)
			stop(c, 10*time.Second)
			if child != 0 && stPPid(child) != 0 {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
		}
		for _, m := range mounts {
			unmount(m)
		}
		_ = os.RemoveAll(base)
	}
	fail := func(err error) (*rig, error) {
		cleanup()
		return nil, fmt.Errorf("syncthing: %w", err)
	}

	env := stEnv()
	homes := make([]string, stNodes)
	dirs := make([]string, stNodes)
	ids := make([]string, stNodes)
	keys := make([]string, stNodes)
	for i := range stNodes {
		homes[i] = filepath.Join(base, fmt.Sprintf("home%d", i))
		dirs[i] = filepath.Join(base, fmt.Sprintf("dir%d", i))
		if err := mount(dirs[i]); err != nil {
			return fail(err)
		}
		mounts = append(mounts, dirs[i])
		// The folder marker, so that the folder starts without an error.
		if err := os.Mkdir(filepath.Join(dirs[i], ".stfolder"), 0o755); err != nil {
			return fail(err)
		}
		// Keys and a config (which stConfig then replaces).
		gen := exec.Command("syncthing", "generate", "--home="+homes[i], "--no-default-folder", "--skip-port-probing")
		gen.Env = env
		if out, err := gen.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("generate: %w: %s", err, out))
		}
		idCmd := exec.Command("syncthing", "serve", "--home="+homes[i], "--device-id")
		idCmd.Env = env
		out, err := idCmd.Output()
		if err != nil {
			return fail(fmt.Errorf("device id: %w", err))
		}
		ids[i] = strings.TrimSpace(string(out))
		if !stDeviceID.MatchString(ids[i]) {
			return fail(fmt.Errorf("unexpected device id %q", ids[i]))
		}
		k := make([]byte, 16)
		_, _ = rand.Read(k)
		keys[i] = hex.EncodeToString(k)
	}
	for i := range stNodes {
		conf := stConfig(i, dirs[i], ids, keys[i])
		if err := os.WriteFile(filepath.Join(homes[i], "config.xml"), []byte(conf), 0o600); err != nil {
			return fail(err)
		}
	}
	for i := range stNodes {
		log, err := os.Create(filepath.Join(base, fmt.Sprintf("syncthing%d.log", i)))
		if err != nil {
			return fail(err)
		}
		cmd := exec.Command("syncthing", "serve", "--home="+homes[i], "--no-browser", "--no-restart",
			"--no-upgrade", "--no-default-folder", "--logflags=3")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = log, log
		err = cmd.Start()
		log.Close()
		if err != nil {
			return fail(err)
		}
		cmds = append(cmds, cmd)
	}
	exited := func() error {
		for i, c := range cmds {
			if stState(c.Process.Pid) == "Z" {
				return fmt.Errorf("instance %d exited at start", i)
			}
		}
		return nil
	}
	if err := stWaitConnected(ids, keys, exited, 60*time.Second); err != nil {
		return fail(fmt.Errorf("%w%s", err, stLogHint(base)))
	}
	// `syncthing serve` is a monitor that runs the real Syncthing as its
	// child (even with --no-restart, which only stops it restarting it) and
	// copies its log: the writer's figures are both processes'.
	pids := []int{cmds[0].Process.Pid, stChild(cmds[0].Process.Pid)}
	if pids[1] == 0 {
		return fail(fmt.Errorf("no Syncthing process under monitor %d", pids[0]))
	}
	return &rig{
		src: dirs[0], peers: dirs[1:], cleanup: cleanup,
		cpu: func() float64 { return procCPU(pids...) }, hwm: func() int64 { return procHWM(pids...) },
	}, nil
}

// stChild returns the pid of the monitor's child, 0 if none.
func stChild(monitor int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if stPPid(pid) == monitor {
			return pid
		}
	}
	return 0
}

// stStat returns the fields of /proc/PID/stat after the command name, nil
// if pid is gone or is not Syncthing.
func stStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || !bytes.Contains(data[:i], []byte("(syncthing")) {
		return nil
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return nil
	}
	return f
}

// stPPid returns the parent pid of pid, 0 if it is gone (or is no longer
// Syncthing).
func stPPid(pid int) int {
	f := stStat(pid)
	if f == nil {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// stState returns the state letter of pid ("Z": exited, not yet waited
// for), "" if it is gone.
func stState(pid int) string {
	if f := stStat(pid); f != nil {
		return f[0]
	}
	return ""
}

// stEnv is the bench's environment without proxy settings (Syncthing would
// dial through a proxy) or inherited Syncthing variables (STGUIADDRESS,
// STTRACE, ...), and with Syncthing's no-upgrade, no-restart and
// no-default-folder switches.
func stEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(name), "_proxy") || strings.HasPrefix(name, "ST") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "STNOUPGRADE=1", "STNORESTART=1", "STNODEFAULTFOLDER=1")
}

// stLogHint returns the last warning each instance logged, for an error
// message (the logs go with the base dir).
func stLogHint(base string) string {
	var hints []string
	for i := range stNodes {
		data, _ := os.ReadFile(filepath.Join(base, fmt.Sprintf("syncthing%d.log", i)))
		var last string
		for line := range strings.SplitSeq(string(data), "\n") {
			if (strings.Contains(line, "WARNING:") || strings.Contains(line, "FATAL:")) && !strings.Contains(line, "privileged") {
				last = strings.TrimSpace(line)
			}
		}
		if last != "" {
			hints = append(hints, fmt.Sprintf("instance %d: %s", i, last))
		}
	}
	if len(hints) == 0 {
		return ""
	}
	return " (last warnings: " + strings.Join(hints, "; ") + ")"
}

func xmlEsc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// stConfig is instance i's config.xml (version 36, Syncthing 1.19's): the
// shared folder, the four devices at their loopback addresses, the REST
// API on loopback, and the options described at syncthing.
func stConfig(i int, dir string, ids []string, apikey string) string {
	var b strings.Builder
	b.WriteString("<configuration version=\"36\">\n")
	fmt.Fprintf(&b, "  <folder id=\"bench\" label=\"bench\" path=\"%s\" type=\"sendreceive\" rescanIntervalS=\"3600\" fsWatcherEnabled=\"true\" fsWatcherDelayS=\"1\" ignorePerms=\"false\" autoNormalize=\"true\">\n", xmlEsc(dir))
	b.WriteString("    <filesystemType>basic</filesystemType>\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "    <device id=\"%s\" introducedBy=\"\"></device>\n", id)
	}
	b.WriteString(`    <minDiskFree unit="%">1</minDiskFree>
    <versioning></versioning>
    <copiers>0</copiers>
    <pullerMaxPendingKiB>0</pullerMaxPendingKiB>
    <hashers>0</hashers>
    <order>random</order>
    <ignoreDelete>false</ignoreDelete>
    <scanProgressIntervalS>-1</scanProgressIntervalS>
    <pullerPauseS>1</pullerPauseS>
    <maxConflicts>10</maxConflicts>
    <disableSparseFiles>false</disableSparseFiles>
    <disableTempIndexes>false</disableTempIndexes>
    <paused>false</paused>
    <weakHashThresholdPct>25</weakHashThresholdPct>
    <markerName>.stfolder</markerName>
    <copyOwnershipFromParent>false</copyOwnershipFromParent>
    <modTimeWindowS>0</modTimeWindowS>
    <maxConcurrentWrites>2</maxConcurrentWrites>
    <disableFsync>false</disableFsync>
    <blockPullOrder>standard</blockPullOrder>
    <copyRangeMethod>standard</copyRangeMethod>
    <caseSensitiveFS>false</caseSensitiveFS>
    <junctionsAsDirs>false</junctionsAsDirs>
  </folder>
`)
	for j, id := range ids {
		fmt.Fprintf(&b, "  <device id=\"%s\" name=\"st%d\" compression=\"never\" introducer=\"false\" skipIntroductionRemovals=\"false\" introducedBy=\"\">\n", id, j)
		if j < i {
			fmt.Fprintf(&b, "    <address>tcp://%s:%d</address>\n", stAddr(j), stBEPPort)
		} else {
			// Dialled by j (see syncthing): no address to dial, and with
			// discovery off, "dynamic" resolves to none.
			b.WriteString("    <address>dynamic</address>\n")
		}
		b.WriteString("    <paused>false</paused>\n    <autoAcceptFolders>false</autoAcceptFolders>\n    <untrusted>false</untrusted>\n  </device>\n")
	}
	fmt.Fprintf(&b, "  <gui enabled=\"true\" tls=\"false\" debugging=\"false\">\n    <address>%s:%d</address>\n    <apikey>%s</apikey>\n    <theme>default</theme>\n  </gui>\n", stAddr(i), stGUIPort, apikey)
	fmt.Fprintf(&b, "  <options>\n    <listenAddress>tcp://%s:%d</listenAddress>\n", stAddr(i), stBEPPort)
	b.WriteString(`    <globalAnnounceServer>default</globalAnnounceServer>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <localAnnouncePort>21027</localAnnouncePort>
    <localAnnounceMCAddr>[ff12::8384]:21027</localAnnounceMCAddr>
    <maxSendKbps>0</maxSendKbps>
    <maxRecvKbps>0</maxRecvKbps>
    <reconnectionIntervalS>5</reconnectionIntervalS>
    <relaysEnabled>false</relaysEnabled>
    <relayReconnectIntervalM>10</relayReconnectIntervalM>
    <startBrowser>false</startBrowser>
    <natEnabled>false</natEnabled>
    <natLeaseMinutes>60</natLeaseMinutes>
    <natRenewalMinutes>30</natRenewalMinutes>
    <natTimeoutSeconds>10</natTimeoutSeconds>
    <urAccepted>-1</urAccepted>
    <urSeen>3</urSeen>
    <urUniqueID></urUniqueID>
    <urURL></urURL>
    <urPostInsecurely>false</urPostInsecurely>
    <urInitialDelayS>1800</urInitialDelayS>
    <restartOnWakeup>false</restartOnWakeup>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <upgradeToPreReleases>false</upgradeToPreReleases>
    <keepTemporariesH>24</keepTemporariesH>
    <cacheIgnoredFiles>false</cacheIgnoredFiles>
    <progressUpdateIntervalS>-1</progressUpdateIntervalS>
    <limitBandwidthInLan>false</limitBandwidthInLan>
    <minHomeDiskFree unit="%">1</minHomeDiskFree>
    <releasesURL></releasesURL>
    <overwriteRemoteDeviceNamesOnConnect>false</overwriteRemoteDeviceNamesOnConnect>
    <tempIndexMinBlocks>10</tempIndexMinBlocks>
    <unackedNotificationID></unackedNotificationID>
    <trafficClass>0</trafficClass>
    <setLowPriority>false</setLowPriority>
    <maxFolderConcurrency>0</maxFolderConcurrency>
    <crashReportingURL></crashReportingURL>
    <crashReportingEnabled>false</crashReportingEnabled>
    <stunKeepaliveStartS>0</stunKeepaliveStartS>
    <stunKeepaliveMinS>0</stunKeepaliveMinS>
    <stunServer></stunServer>
    <databaseTuning>auto</databaseTuning>
    <maxConcurrentIncomingRequestKiB>0</maxConcurrentIncomingRequestKiB>
    <announceLANAddresses>false</announceLANAddresses>
    <sendFullIndexOnUpgrade>false</sendFullIndexOnUpgrade>
    <connectionLimitEnough>0</connectionLimitEnough>
    <connectionLimitMax>0</connectionLimitMax>
    <insecureAllowOldTLSVersions>false</insecureAllowOldTLSVersions>
  </options>
</configuration>
`)
	return b.String()
}

// stWaitConnected waits until every instance is connected to the three
// others and its folder is idle (its first scan done), through each REST
// API, from 127.0.3.1 like the rest of the bench; it gives up early when
// exited reports an instance gone.
func stWaitConnected(ids, keys []string, exited func() error, timeout time.Duration) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			Proxy:       nil,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(stAddr(0))}}).DialContext,
		},
	}
	defer client.CloseIdleConnections()
	get := func(i int, path string, v any) error {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, fmt.Sprintf("http://%s:%d%s", stAddr(i), stGUIPort, path), nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Key", keys[i])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for i := range ids {
			var conns struct {
				Connections map[string]struct {
					Connected bool `json:"connected"`
				} `json:"connections"`
			}
			if err := get(i, "/rest/system/connections", &conns); err != nil {
				missing = append(missing, fmt.Sprintf("instance %d: %v", i, err))
				continue
			}
			for j, id := range ids {
				if j != i && !conns.Connections[id].Connected {
					missing = append(missing, fmt.Sprintf("instance %d not connected to %d", i, j))
				}
			}
			var st struct {
				State      string `json:"state"`
				Error      string `json:"error"`
				WatchError string `json:"watchError"`
			}
			if err := get(i, "/rest/db/status?folder=bench", &st); err != nil {
				missing = append(missing, fmt.Sprintf("instance %d: %v", i, err))
				continue
			}
			switch {
			case st.Error != "":
				return fmt.Errorf("instance %d: folder error: %s", i, st.Error)
			case st.WatchError != "":
				return fmt.Errorf("instance %d: cannot watch the folder: %s", i, st.WatchError)
			case st.State != "idle":
				missing = append(missing, fmt.Sprintf("instance %d folder %s", i, st.State))
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if err := exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not connected after %s: %s", timeout, strings.Join(missing, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
