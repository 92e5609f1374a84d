package bsm

import "strconv"

// Event is an audit event number, the header token's event type. The kernel's
// numbers are in sys/bsm/audit_kevents.h, their names in OpenBSM's
// etc/audit_event.
type Event uint16

// String is the event's name from OpenBSM's etc/audit_event, such as
// "AUE_OPENAT_RWC", or the number in decimal when this package does not
// know it.
func (e Event) String() string {
	if n := eventName(e); n != "" {
		return n
	}
	return strconv.FormatUint(uint64(e), 10)
}

// Events the change view maps (sys/bsm/audit_kevents.h, FreeBSD 14).
const (
	EventNull         Event = 0
	EventCreat        Event = 4
	EventLink         Event = 5
	EventUnlink       Event = 6
	EventMknod        Event = 9
	EventChmod        Event = 10
	EventChown        Event = 11
	EventSymlink      Event = 21
	EventExecve       Event = 23
	EventFchown       Event = 38
	EventFchmod       Event = 39
	EventRename       Event = 42
	EventTruncate     Event = 43
	EventFtruncate    Event = 44
	EventMkdir        Event = 47
	EventRmdir        Event = 48
	EventUtimes       Event = 49
	EventOpenR        Event = 72 // first of the 12 split open events
	EventOpenRWTC     Event = 83 // last of them
	EventClose        Event = 112
	EventWrite        Event = 195
	EventWritev       Event = 196
	EventLchown       Event = 237
	EventOpenatR      Event = 270 // first of the 12 split openat events
	EventOpenatRWTC   Event = 281 // last of them
	EventRenameat     Event = 282
	EventFchownat     Event = 284
	EventFutimesat    Event = 285
	EventUnlinkat     Event = 286
	EventChflags      Event = 43003
	EventFchflags     Event = 43004
	EventMkfifo       Event = 43011
	EventFutimes      Event = 43013
	EventLchmod       Event = 43044
	EventLutimes      Event = 43052
	EventLchflags     Event = 43053
	EventFsync        Event = 43069
	EventACLSetFile   Event = 43089
	EventACLSetFD     Event = 43091
	EventACLDelFile   Event = 43092
	EventACLDelFD     Event = 43093
	EventACLSetLink   Event = 43097
	EventACLDelLink   Event = 43098
	EventExtattrSetF  Event = 43103 // extattr_set_file
	EventExtattrDelF  Event = 43105 // extattr_delete_file
	EventExtattrSetFD Event = 43107
	EventExtattrDelFD Event = 43109
	EventExtattrSetL  Event = 43111 // extattr_set_link
	EventExtattrDelL  Event = 43113 // extattr_delete_link
	EventFchmodat     Event = 43146
	EventLinkat       Event = 43147
	EventMkdirat      Event = 43148
	EventMkfifoat     Event = 43149
	EventMknodat      Event = 43150
	EventSymlinkat    Event = 43152
	EventPwrite       Event = 43193
	EventChflagsat    Event = 43209
	EventPwritev      Event = 43211
	EventFallocate    Event = 43212 // posix_fallocate
)

// Open access modes the kernel encodes in the split open events.
const (
	openRead  = 1 << iota // R
	openWrite             // W
	openCreat             // C: O_CREAT was asked for, not that a file was made
	openTrunc             // T
)

// openMode decodes the access bits of an open event: OPEN_R..OPEN_RWTC
// (72..83) and OPENAT_R..OPENAT_RWTC (270..281) run in the order R, RC, RT,
// RTC, W, WC, WT, WTC, RW, RWC, RWT, RWTC (sys/bsm/audit_kevents.h;
// audit_flags_and_error_to_openevent() in sys/security/audit/audit_bsm_klib.c
// picks one). AUE_CREAT is creat(2): O_WRONLY|O_CREAT|O_TRUNC. It reports
// false for any other event.
func openMode(e Event) (int, bool) {
	var i int
	switch {
	case e >= EventOpenR && e <= EventOpenRWTC:
		i = int(e - EventOpenR)
	case e >= EventOpenatR && e <= EventOpenatRWTC:
		i = int(e - EventOpenatR)
	case e == EventCreat:
		return openWrite | openCreat | openTrunc, true
	default:
		return 0, false
	}
	mode := [3]int{openRead, openWrite, openRead | openWrite}[i/4]
	if i&1 != 0 {
		mode |= openCreat
	}
	if i&2 != 0 {
		mode |= openTrunc
	}
	return mode, true
}
