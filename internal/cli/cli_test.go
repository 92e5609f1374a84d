package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		wantO   string
		wantV   bool
	}{
		{name: "flags first", args: []string{"-o", "json", "f"}, wantPos: []string{"f"}, wantO: "json"},
		{name: "flags after", args: []string{"f", "-o", "json", "-v"}, wantPos: []string{"f"}, wantO: "json", wantV: true},
		{name: "between", args: []string{"a", "--o=json", "b"}, wantPos: []string{"a", "b"}, wantO: "json"},
		{name: "after --", args: []string{"a", "--", "-o", "b"}, wantPos: []string{"a", "-o", "b"}, wantO: "text"},
		{name: "none", args: nil, wantO: "text"},
		{name: "dash is positional", args: []string{"-", "-v"}, wantPos: []string{"-"}, wantO: "text", wantV: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o := fs.String("o", "text", "")
			v := fs.Bool("v", false, "")
			pos, err := ParseInterspersed(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pos, tt.wantPos) || *o != tt.wantO || *v != tt.wantV {
				t.Errorf("pos %q, -o %q, -v %v; want %q, %q, %v", pos, *o, *v, tt.wantPos, tt.wantO, tt.wantV)
			}
		})
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := ParseInterspersed(fs, []string{"f", "-nope"}); err == nil {
		t.Error("an unknown flag after a positional argument was taken")
	}
}

func TestNoArgs(t *testing.T) {
	if err := NoArgs(nil); err != nil {
		t.Errorf("NoArgs(nil) = %v", err)
	}
	if err := NoArgs([]string{"x"}); err == nil {
		t.Error("NoArgs(x) = nil")
	}
}
