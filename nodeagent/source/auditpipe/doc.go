// Package auditpipe is the FreeBSD change source: it reads BSM records from
// /dev/auditpipe in LOCAL preselection mode and turns them into changes.
//
// The portable parts (ioctl numbers, the pipe's masks, close tracking, the
// record-to-change stage) have no build tag and are tested on Linux with
// kernel-shaped records; opening and configuring the device is in
// auditpipe_freebsd.go.
//
// # Caveats
//
//   - No trail, no records: the kernel audits only while an audit trail is
//     active (auditd running with the event-to-class map loaded). The fix is
//     auditd with empty flags and naflags in /etc/security/audit_control;
//     the source reports ErrNoRecords-style status when nothing flows.
//   - Implicit closes (exit, exec, dup2, closefrom, close_range) write no
//     close record, and writes through an fd opened earlier, or through
//     copy_file_range, write no record at all: such files are caught by the
//     settle fallback after their open, or by a scan.
//   - A full queue drops the newest records; any rise of the drop counter
//     is reported as a Rescan of the whole root.
package auditpipe
