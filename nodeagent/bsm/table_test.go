package bsm

import (
	"strings"
	"testing"
)

// TestTableLookup checks that each name table is sorted, that every line
// is found, and that numbers between and around the lines are not.
func TestTableLookup(t *testing.T) {
	for name, table := range map[string]string{"events": eventTable, "errno": errnoTable, "tokens": tokenTable} {
		t.Run(name, func(t *testing.T) {
			present := map[uint64]bool{}
			prev := int64(-1)
			for _, line := range strings.Split(table, "\n") {
				n, rest := lineNumber(line)
				if int64(n) <= prev || rest == "" || strings.Contains(line, " \t") {
					t.Fatalf("line %q: not sorted or malformed after %d", line, prev)
				}
				prev = int64(n)
				present[n] = true
				if got, ok := tableLookup(table, n); !ok || got != rest {
					t.Errorf("tableLookup(%d) = %q, %v; want %q", n, got, ok, rest)
				}
			}
			for n := uint64(0); n <= uint64(prev)+2 && n < 70000; n++ {
				if !present[n] {
					if got, ok := tableLookup(table, n); ok {
						t.Fatalf("tableLookup(%d) = %q for a number not in the table", n, got)
					}
				}
			}
		})
	}
	if _, ok := tableLookup("", 0); ok {
		t.Error("lookup in an empty table succeeded")
	}
}
