package auditpipe

import "testing"

// The values in ../shared/docs/freebsd-audit.md, read from FreeBSD's
// sys/security/audit/audit_ioctl.h and sys/sys/ioccom.h.
func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  uint32
		want uint32
	}{
		{"AUDITPIPE_GET_QLEN", ioctlGetQLen, 0x40044101},
		{"AUDITPIPE_GET_QLIMIT", ioctlGetQLimit, 0x40044102},
		{"AUDITPIPE_SET_QLIMIT", ioctlSetQLimit, 0x80044103},
		{"AUDITPIPE_GET_QLIMIT_MIN", ioctlGetQLimitMin, 0x40044104},
		{"AUDITPIPE_GET_QLIMIT_MAX", ioctlGetQLimitMax, 0x40044105},
		{"AUDITPIPE_GET_PRESELECT_FLAGS", ioctlGetPreselectFlags, 0x40084106},
		{"AUDITPIPE_SET_PRESELECT_FLAGS", ioctlSetPreselectFlags, 0x80084107},
		{"AUDITPIPE_GET_PRESELECT_NAFLAGS", ioctlGetPreselectNAFlags, 0x40084108},
		{"AUDITPIPE_SET_PRESELECT_NAFLAGS", ioctlSetPreselectNAFlags, 0x80084109},
		{"AUDITPIPE_GET_PRESELECT_AUID", ioctlGetPreselectAuID, 0x400c410a},
		{"AUDITPIPE_SET_PRESELECT_AUID", ioctlSetPreselectAuID, 0x800c410b},
		{"AUDITPIPE_DELETE_PRESELECT_AUID", ioctlDeletePreselectAuID, 0x8004410c},
		{"AUDITPIPE_FLUSH_PRESELECT_AUID", ioctlFlushPreselectAuID, 0x2000410d},
		{"AUDITPIPE_GET_PRESELECT_MODE", ioctlGetPreselectMode, 0x4004410e},
		{"AUDITPIPE_SET_PRESELECT_MODE", ioctlSetPreselectMode, 0x8004410f},
		{"AUDITPIPE_FLUSH", ioctlFlush, 0x20004110},
		{"AUDITPIPE_GET_MAXAUDITDATA", ioctlGetMaxAuditData, 0x40044111},
		{"AUDITPIPE_GET_INSERTS", ioctlGetInserts, 0x40084164},
		{"AUDITPIPE_GET_READS", ioctlGetReads, 0x40084165},
		{"AUDITPIPE_GET_DROPS", ioctlGetDrops, 0x40084166},
		{"AUDITPIPE_GET_TRUNCATES", ioctlGetTruncates, 0x40084167},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if pipeMask != 0x7A {
		t.Errorf("pipe mask = %#x, want 0x7a (fw|fm|fc|fd|cl)", pipeMask)
	}
}
