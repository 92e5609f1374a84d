package rsync

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuildArgs_Push(t *testing.T) {
	tg := Target{
		Addr:   netip.MustParseAddrPort("192.0.2.7:873"),
		Module: "data", User: "agent", Password: "pw\n",
		Source: netip.MustParseAddr("192.0.2.1"),
	}
	o := Options{
		BandwidthLimit: 1 << 20, Compress: true,
		ConnectTimeout: 1500 * time.Millisecond, IOTimeout: 30 * time.Second,
		TempDir: ".jailsync/tmp", PartialDir: "/.jailsync/partial",
		Progress: func(int64) {},
	}
	got, err := buildArgs(tg, o, modePush)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--links", "--perms", "--times", "--group", "--owner", "--devices", "--specials",
		"--hard-links", "--numeric-ids", "--modify-window=-1", "--relative", "--dirs", "--force",
		"--ignore-missing-args",
		"--from0", "--files-from=-",
		"--itemize-changes", "--itemize-changes",
		"--out-format=jailsync1 %i %l %b %n",
		"--8-bit-output", "--stats", "--no-human-readable",
		"--sockopts=TCP_NODELAY", "--contimeout=2", "--timeout=30",
		"--address=192.0.2.1",
		"--temp-dir=.jailsync/tmp", "--partial-dir=/.jailsync/partial",
		"--bwlimit=1024", "--compress", "--info=progress2",
		".", "rsync://agent@192.0.2.7:873/data/",
	}
	if !slices.Equal(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
	for _, a := range got {
		if a == "--delete" || strings.HasPrefix(a, "--delete-") && a != "--delete-missing-args" {
			t.Errorf("push args hold %s", a)
		}
	}
}

func TestBuildArgs_DeleteAndDefaults(t *testing.T) {
	tg := Target{Addr: netip.MustParseAddrPort("[2001:db8::5]:18600"), Module: "m"}
	got, err := buildArgs(tg, Options{BandwidthLimit: 100, Progress: func(int64) {}}, modeDelete)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--delete-missing-args", "--force", "--contimeout=10", "--timeout=60", "--bwlimit=1"} {
		if !slices.Contains(got, want) {
			t.Errorf("args lack %s: %q", want, got)
		}
	}
	for _, bad := range []string{"--ignore-missing-args", "--delete", "--compress", "--recursive", "--info=progress2"} {
		if slices.Contains(got, bad) {
			t.Errorf("args hold %s", bad)
		}
	}
	if url := got[len(got)-1]; url != "rsync://[2001:db8::5]:18600/m/" {
		t.Errorf("url %q", url)
	}
	for _, a := range got {
		if strings.HasPrefix(a, "--address") {
			t.Errorf("no Source, but %s", a)
		}
	}
}

// TestBuildArgs_DelayUpdatesNeedsARelativePartialDir: delayed files wait
// in the partial directory; an absolute one has one slot per name, so
// a/x and b/x of one run would swap content.
func TestBuildArgs_DelayUpdatesNeedsARelativePartialDir(t *testing.T) {
	tg := Target{Addr: netip.MustParseAddrPort("127.0.8.1:18600"), Module: "m"}
	tests := []struct {
		partial string
		ok      bool
	}{
		{"", true},
		{".~partial~", true},
		{"/.jailsync/partial", false},
	}
	for _, tc := range tests {
		args, err := buildArgs(tg, Options{DelayUpdates: true, PartialDir: tc.partial}, modePush)
		if (err == nil) != tc.ok {
			t.Errorf("DelayUpdates with PartialDir %q: %v, want accepted: %v", tc.partial, err, tc.ok)
		}
		if err == nil && !slices.Contains(args, "--delay-updates") {
			t.Errorf("DelayUpdates with PartialDir %q: args lack --delay-updates: %q", tc.partial, args)
		}
	}
}

func TestBuildArgs_BandwidthRounding(t *testing.T) {
	for bps, want := range map[int64]string{1: "1", 1023: "1", 1536: "2", 2 << 20: "2048", 1535: "1"} {
		args, err := buildArgs(Target{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Module: "m"}, Options{BandwidthLimit: bps}, modePush)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(args, "--bwlimit="+want) {
			t.Errorf("%d B/s: want --bwlimit=%s in %q", bps, want, args)
		}
	}
}

func TestTarget_url_Invalid(t *testing.T) {
	ok := netip.MustParseAddrPort("127.0.0.1:873")
	for name, tg := range map[string]Target{
		"no address":     {Module: "m"},
		"no port":        {Addr: netip.MustParseAddrPort("127.0.0.1:0"), Module: "m"},
		"no module":      {Addr: ok},
		"slash module":   {Addr: ok, Module: "a/b"},
		"newline module": {Addr: ok, Module: "a\nb"},
		"at in user":     {Addr: ok, Module: "m", User: "a@b"},
		"colon in user":  {Addr: ok, Module: "m", User: "a:b"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tg.url(); !errors.Is(err, ErrTarget) {
				t.Errorf("url() error %v, want ErrTarget", err)
			}
		})
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("RSYNC_PROXY", "proxy.invalid:3128")
	t.Setenv("RSYNC_PARTIAL_DIR", "elsewhere")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("HOME", "/root")
	env := environ("secret\n")
	var pw []string
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "RSYNC_PASSWORD="):
			pw = append(pw, kv)
		case strings.HasPrefix(kv, "RSYNC_"), kv == "LC_ALL=de_DE.UTF-8", kv == "HOME=/root":
			t.Errorf("environment keeps %s", kv)
		}
	}
	if !slices.Equal(pw, []string{"RSYNC_PASSWORD=secret"}) {
		t.Errorf("password %q, want one trailing newline trimmed", pw)
	}
	if got := environ("two\n\n"); !slices.Contains(got, "RSYNC_PASSWORD=two\n") {
		t.Error("only one trailing newline is trimmed")
	}
	if got := environ(""); !slices.Contains(got, "RSYNC_PASSWORD=") {
		t.Error("RSYNC_PASSWORD is set even when empty, so that rsync never prompts")
	}
}
