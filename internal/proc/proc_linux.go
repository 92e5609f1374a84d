// Package proc reads what Linux's /proc says of other processes: here,
// which processes make up a process group.
package proc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Group returns the processes of process group pgid, zombies included,
// read from /proc/<pid>/stat (proc(5): the fifth field is the group); nil
// when it has none or /proc cannot be read. No library reads it (x/sys
// has no call for it).
func Group(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(pgid)
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and
		// parentheses, so the fields are counted after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(b[i+1:])); len(f) > 2 && f[2] == want {
			out = append(out, pid)
		}
	}
	return out
}
