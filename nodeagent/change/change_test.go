package change

import "testing"

func TestRel(t *testing.T) {
	tests := []struct {
		name, root, abs, want string
		ok                    bool
	}{
		{"file below root", "/data/www", "/data/www/a/b.txt", "a/b.txt", true},
		{"root itself", "/data/www", "/data/www", ".", true},
		{"root with trailing slash", "/data/www", "/data/www/", ".", true},
		{"doubled slashes", "/data/www", "/data//www///a//b", "a/b", true},
		{"dot components", "/data/www", "/data/./www/./a", "a", true},
		{"dot-dot inside", "/data/www", "/data/www/a/../b", "b", true},
		{"dot-dot leading out", "/data/www", "/data/www/../etc/passwd", "", false},
		{"sibling with common prefix", "/data/www", "/data/www2/a", "", false},
		{"parent", "/data/www", "/data", "", false},
		{"relative", "/data/www", "data/www/a", "", false},
		{"empty (kernel could not build it)", "/data/www", "", "", false},
		{"dot-dot above slash stays at slash", "/data/www", "/../../data/www/x", "x", true},
		{"root is slash", "/", "/etc/rc.conf", "etc/rc.conf", true},
		{"invalid UTF-8 kept byte-exact", "/data/www", "/data/www/\xff\xfe name", "\xff\xfe name", true},
		{"newline and leading dash kept", "/data/www", "/data/www/-n\nx", "-n\nx", true},
		{"jail prefix", "/usr/jails/web/data", "/usr/jails/web/data/index.html", "index.html", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Rel(tc.root, tc.abs)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Rel(%q, %q) = %q, %v; want %q, %v", tc.root, tc.abs, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestOp_String(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{0, "none"},
		{Create, "create"},
		{Create | Write | Attrib, "create|write|attrib"},
		{Rename | Subtree, "rename|subtree"},
	}
	for _, tc := range tests {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", tc.op, got, tc.want)
		}
	}
}

// TestOp_Merge: an entry keeps Found only while every write merged into it
// was found by a scan; a write seen happening makes its content new to
// every peer.
func TestOp_Merge(t *testing.T) {
	const found, seen = Create | Write | Found, Write
	for _, tc := range []struct {
		name     string
		old, now Op
		want     Op
	}{
		{"found twice", found, found, found},
		{"found, then written", found, seen, Create | Write},
		{"written, then found", seen, found, Create | Write},
		{"found, then its mode changed", found, Attrib, found | Attrib},
		{"written twice", seen, Create | Write, Create | Write},
	} {
		if got := tc.old.Merge(tc.now); got != tc.want {
			t.Errorf("%s: %v.Merge(%v) = %v, want %v", tc.name, tc.old, tc.now, got, tc.want)
		}
	}
}
