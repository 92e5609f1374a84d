package auditpipe

// Ioctl numbers of auditpipe(4), computed as FreeBSD's sys/sys/ioccom.h
// computes them (_IO, _IOR, _IOW) from the definitions in
// sys/security/audit/audit_ioctl.h. They are the same on amd64 and arm64.
const (
	iocParmMask = 1<<13 - 1 // IOCPARM_MASK
	iocVoid     = 0x20000000
	iocOut      = 0x40000000
	iocIn       = 0x80000000
	ioBase      = 'A' // AUDITPIPE_IOBASE

	sizeofUint      = 4  // u_int
	sizeofInt       = 4  // int
	sizeofAuID      = 4  // au_id_t
	sizeofMask      = 8  // au_mask_t: am_success, am_failure
	sizeofPreselect = 12 // struct auditpipe_ioctl_preselect: au_id_t, au_mask_t
	sizeofUint64    = 8  // u_int64_t
)

// The auditpipe ioctls: inout | (size & IOCPARM_MASK) << 16 | group << 8 | num.
const (
	ioctlGetQLen             = iocOut | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 1
	ioctlGetQLimit           = iocOut | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 2
	ioctlSetQLimit           = iocIn | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 3
	ioctlGetQLimitMin        = iocOut | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 4
	ioctlGetQLimitMax        = iocOut | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 5
	ioctlGetPreselectFlags   = iocOut | (sizeofMask&iocParmMask)<<16 | ioBase<<8 | 6
	ioctlSetPreselectFlags   = iocIn | (sizeofMask&iocParmMask)<<16 | ioBase<<8 | 7
	ioctlGetPreselectNAFlags = iocOut | (sizeofMask&iocParmMask)<<16 | ioBase<<8 | 8
	ioctlSetPreselectNAFlags = iocIn | (sizeofMask&iocParmMask)<<16 | ioBase<<8 | 9
	ioctlGetPreselectAuID    = iocOut | (sizeofPreselect&iocParmMask)<<16 | ioBase<<8 | 10
	ioctlSetPreselectAuID    = iocIn | (sizeofPreselect&iocParmMask)<<16 | ioBase<<8 | 11
	ioctlDeletePreselectAuID = iocIn | (sizeofAuID&iocParmMask)<<16 | ioBase<<8 | 12
	ioctlFlushPreselectAuID  = iocVoid | (0&iocParmMask)<<16 | ioBase<<8 | 13
	ioctlGetPreselectMode    = iocOut | (sizeofInt&iocParmMask)<<16 | ioBase<<8 | 14
	ioctlSetPreselectMode    = iocIn | (sizeofInt&iocParmMask)<<16 | ioBase<<8 | 15
	ioctlFlush               = iocVoid | (0&iocParmMask)<<16 | ioBase<<8 | 16
	ioctlGetMaxAuditData     = iocOut | (sizeofUint&iocParmMask)<<16 | ioBase<<8 | 17
	ioctlGetInserts          = iocOut | (sizeofUint64&iocParmMask)<<16 | ioBase<<8 | 100
	ioctlGetReads            = iocOut | (sizeofUint64&iocParmMask)<<16 | ioBase<<8 | 101
	ioctlGetDrops            = iocOut | (sizeofUint64&iocParmMask)<<16 | ioBase<<8 | 102
	ioctlGetTruncates        = iocOut | (sizeofUint64&iocParmMask)<<16 | ioBase<<8 | 103
	preselectModeTrail       = 1 // AUDITPIPE_PRESELECT_MODE_TRAIL
	preselectModeLocal       = 2 // AUDITPIPE_PRESELECT_MODE_LOCAL
)

// Audit class bits (/etc/security/audit_class).
const (
	classFR = 0x01 // file read
	classFW = 0x02 // file write
	classFA = 0x04 // file attribute access
	classFM = 0x08 // file attribute modify
	classFC = 0x10 // file create
	classFD = 0x20 // file delete
	classCL = 0x40 // file close
)

// pipeMask is the success mask the agent selects: writes, attribute
// changes, creates, deletes and closes (fw|fm|fc|fd|cl). Failures are not
// selected: a failed syscall changes nothing.
const pipeMask = classFW | classFM | classFC | classFD | classCL

// auidUnset is the audit user id of a process that never logged in.
const auidUnset = 0xFFFFFFFF
