package rsyncd

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Address:  netip.MustParseAddrPort("127.0.9.50:18750"),
		StateDir: filepath.Join(t.TempDir(), "state"),
		Password: "secret",
		Modules: []Module{{
			Name:       "group-1.example",
			Path:       "/srv/data root/with, commas=and [brackets] #hash ;semi 50%off %%",
			HostsAllow: []netip.Addr{netip.MustParseAddr("127.0.9.150"), netip.MustParseAddr("::ffff:127.0.9.151"), netip.MustParseAddr("fd00::2")},
		}},
	}
}

// validateCase is one configuration for TestConfig_Validate: valid (ok)
// or refused with ErrInvalidConfig.
type validateCase struct {
	name   string
	modify func(c *Config)
	ok     bool
}

func validateCases() []validateCase {
	return []validateCase{
		{name: "valid", modify: func(c *Config) {}, ok: true},
		{name: "password with colon and spaces", modify: func(c *Config) { c.Password = "a:b c#d\n" }, ok: true},
		{name: "IPv6 listen address", modify: func(c *Config) { c.Address = netip.MustParseAddrPort("[fd00::1]:873") }, ok: true},
		{name: "no modules", modify: func(c *Config) { c.Modules = nil }, ok: true},
		{name: "no authentication, no password", modify: func(c *Config) { c.NoAuth, c.Password = true, "" }, ok: true},
		{name: "no authentication with a password", modify: func(c *Config) { c.NoAuth = true }},

		{name: "no address", modify: func(c *Config) { c.Address = netip.AddrPort{} }},
		{name: "wildcard address", modify: func(c *Config) { c.Address = netip.MustParseAddrPort("0.0.0.0:873") }},
		{name: "IPv6 wildcard", modify: func(c *Config) { c.Address = netip.MustParseAddrPort("[::]:873") }},
		{name: "port 0", modify: func(c *Config) { c.Address = netip.MustParseAddrPort("127.0.9.50:0") }},
		{name: "zone", modify: func(c *Config) { c.Address = netip.MustParseAddrPort("[fe80::1%eth0]:873") }},
		{name: "relative state dir", modify: func(c *Config) { c.StateDir = "state" }},
		{name: "state dir with newline", modify: func(c *Config) { c.StateDir = "/var/db/x\ny" }},
		{name: "empty password", modify: func(c *Config) { c.Password = "\n" }},
		{name: "password with newline", modify: func(c *Config) { c.Password = "a\nb" }},
		{name: "password with two trailing newlines", modify: func(c *Config) { c.Password = "ab\n\n" }},
		{name: "password with carriage return", modify: func(c *Config) { c.Password = "ab\r\n" }},
		{name: "password with NUL", modify: func(c *Config) { c.Password = "a\x00b" }},
		{name: "password too long", modify: func(c *Config) { c.Password = strings.Repeat("x", 512) }},
		{name: "user with colon", modify: func(c *Config) { c.User = "a:b" }},
		{name: "user starting with @", modify: func(c *Config) { c.User = "@group" }},
		{name: "negative max connections", modify: func(c *Config) { c.MaxConnections = -1 }},
		{name: "negative timeout", modify: func(c *Config) { c.Timeout = -time.Second }},

		{name: "empty module name", modify: func(c *Config) { c.Modules[0].Name = "" }},
		{name: "name with ]", modify: func(c *Config) { c.Modules[0].Name = "a]b" }},
		{name: "name with newline", modify: func(c *Config) { c.Modules[0].Name = "a\n[b]" }},
		{name: "name with slash", modify: func(c *Config) { c.Modules[0].Name = "a/b" }},
		{name: "name with space", modify: func(c *Config) { c.Modules[0].Name = "a b" }},
		{name: "name with leading space", modify: func(c *Config) { c.Modules[0].Name = " a" }},
		{name: "name with trailing space", modify: func(c *Config) { c.Modules[0].Name = "a " }},
		{name: "name starting with #", modify: func(c *Config) { c.Modules[0].Name = "#a" }},
		{name: "name starting with ;", modify: func(c *Config) { c.Modules[0].Name = ";a" }},
		{name: "name with %", modify: func(c *Config) { c.Modules[0].Name = "a%HOME%" }},
		{name: "name global", modify: func(c *Config) { c.Modules[0].Name = "Global" }},
		{name: "name too long", modify: func(c *Config) { c.Modules[0].Name = strings.Repeat("a", 254) }},
		{name: "duplicate module", modify: func(c *Config) { c.Modules = append(c.Modules, c.Modules[0]) }},

		{name: "empty path", modify: func(c *Config) { c.Modules[0].Path = "" }},
		{name: "relative path", modify: func(c *Config) { c.Modules[0].Path = "srv/data" }},
		{name: "root path", modify: func(c *Config) { c.Modules[0].Path = "/" }},
		{name: "path with newline", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\n[evil]\npath = /" }},
		{name: "path with carriage return", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\rb" }},
		{name: "path with tab", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\tb" }},
		{name: "path with NUL", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\x00b" }},
		{name: "path with DEL", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\x7fb" }},
		{name: "path with trailing space", modify: func(c *Config) { c.Modules[0].Path = "/srv/a " }},
		{name: "path with trailing no-break space", modify: func(c *Config) { c.Modules[0].Path = "/srv/a\u00a0" }, ok: true},
		{name: "path with trailing backslash", modify: func(c *Config) { c.Modules[0].Path = `/srv/a\` }},
		{name: "path with trailing slash", modify: func(c *Config) { c.Modules[0].Path = "/srv/a/" }},
		{name: "path with dot dir", modify: func(c *Config) { c.Modules[0].Path = "/srv/./a" }},
		{name: "path with dot-dot", modify: func(c *Config) { c.Modules[0].Path = "/srv/../a" }},
		{name: "path with double slash", modify: func(c *Config) { c.Modules[0].Path = "/srv//a" }},
		{name: "path with environment reference", modify: func(c *Config) { c.Modules[0].Path = "/home/%RSYNC_USER_NAME%" }},
		{name: "path with % before non-ASCII", modify: func(c *Config) { c.Modules[0].Path = "/srv/%\xc3\x89" }},
		{name: "path too long", modify: func(c *Config) { c.Modules[0].Path = "/" + strings.Repeat("a", 1023) }},
		{name: "unspecified allowed host", modify: func(c *Config) { c.Modules[0].HostsAllow = []netip.Addr{netip.IPv4Unspecified()} }},
		{name: "invalid allowed host", modify: func(c *Config) { c.Modules[0].HostsAllow = []netip.Addr{{}} }},
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	tests := validateCases()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.modify(&c)
			err := c.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			if !tc.ok {
				// Write refuses it too, and writes nothing.
				if err := Write(c); !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("Write: %v, want ErrInvalidConfig", err)
				}
				if exists(c.StateDir) {
					t.Errorf("Write created %s", c.StateDir)
				}
			}
		})
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	c.Password = "a:b c\n"
	if err := Write(c); err != nil {
		t.Fatal(err)
	}

	secrets, err := os.ReadFile(c.SecretsFile())
	if err != nil {
		t.Fatal(err)
	}
	if string(secrets) != "jailsync:a:b c\n" {
		t.Errorf("secrets %q", secrets)
	}
	for file, want := range map[string]os.FileMode{c.SecretsFile(): 0o600, c.ConfigFile(): 0o644, c.StateDir: 0o700 | os.ModeDir} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", file, fi.Mode(), want)
		}
	}
	if entries, _ := os.ReadDir(c.StateDir); len(entries) != 2 {
		t.Errorf("state dir holds %v, want only the config and secrets (no temp files)", entries)
	}

	conf, err := os.ReadFile(c.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	global, modules := parseConf(t, string(conf))
	wantGlobal := map[string]string{
		"address": "127.0.9.50", "port": "18750",
		"pid file": c.PIDFile(), "lock file": c.LockFile(), "log file": c.LogFile(),
		"socket options": "TCP_NODELAY", "reverse lookup": "no", "listen backlog": "128",
	}
	checkParams(t, "global", global, wantGlobal)
	m := modules["group-1.example"]
	if m == nil {
		t.Fatalf("module missing: %s", conf)
	}
	checkParams(t, "module", m, map[string]string{
		"path": c.Modules[0].Path, "use chroot": "yes", "munge symlinks": "no", "numeric ids": "yes",
		"uid": "0", "gid": "0", "read only": "no", "list": "no",
		"auth users": "jailsync", "secrets file": c.SecretsFile(), "strict modes": "yes",
		"hosts allow": "127.0.9.150 127.0.9.151 fd00::2", "hosts deny": "*",
		"max connections": "64", "timeout": "300",
		"refuse options":   refuseOptions,
		"filter":           "+ /.jailsync/ + /.jailsync/partial/ + /.jailsync/partial/* - /.jailsync/***",
		"transfer logging": "no",
	})

	// A rewrite replaces the file; read only and the limits follow Config.
	c.Modules[0].ReadOnly = true
	c.Timeout = 1500 * time.Millisecond
	c.MaxConnections = 3
	c.ListenBacklog = 512
	if err := Write(c); err != nil {
		t.Fatal(err)
	}
	conf, _ = os.ReadFile(c.ConfigFile())
	global, modules = parseConf(t, string(conf))
	checkParams(t, "global", global, map[string]string{"listen backlog": "512"})
	checkParams(t, "module", modules["group-1.example"], map[string]string{"read only": "yes", "timeout": "2", "max connections": "3"})
}

// parseConf reads rsyncd.conf as params.c does, for what Write produces:
// "[name]" lines start modules, "key = value" lines set parameters (first
// '=' significant, whitespace around key and value dropped), '#' lines are
// comments.
func parseConf(t *testing.T, conf string) (map[string]string, map[string]map[string]string) {
	t.Helper()
	global := map[string]string{}
	modules := map[string]map[string]string{}
	cur := global
	for _, line := range strings.Split(strings.TrimSuffix(conf, "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(trimmed, "["):
			name := strings.TrimSuffix(strings.TrimPrefix(trimmed, "["), "]")
			cur = map[string]string{}
			modules[name] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %q: no '='", line)
			}
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return global, modules
}

func checkParams(t *testing.T, section string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %q = %q, want %q", section, k, got[k], v)
		}
	}
}
