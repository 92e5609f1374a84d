package agent

import "strconv"

// ReceiverAUID is the audit user id the agent's rsync daemon runs under
// (set with setauid(2) through `nodeagent audit exec`): the auditpipe
// reader gives it an empty preselection mask, so the kernel does not even
// queue the records of files arriving from peers. No login gets it: audit
// user ids are the uids of logins, and this one (0x6A61696C, "jail") is far
// above any uid a system assigns and below AUIDUnset.
const ReceiverAUID uint32 = 0x6A61696C

// auditWrapper is the command that starts the rsync daemon under
// ReceiverAUID on FreeBSD: the agent's own binary (self), `audit exec`
// (nodeagent/auditcmd), then the daemon's own command.
func auditWrapper(self string) []string {
	return []string{self, "audit", "exec", "--auid", strconv.FormatUint(uint64(ReceiverAUID), 10), "--"}
}
