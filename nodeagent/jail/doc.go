// Package jail finds the data root of a SyncGroup that lives inside a
// FreeBSD jail: the jail's root on this host (by name, through jail_get(2))
// joined with the group's path, and notices when the jail restarts (its jid
// changes), so that the agent re-resolves and re-checks the root.
//
// Audit path tokens hold host paths also for jailed processes, so a jailed
// group's changes are recognised by the host path of its root; records from
// processes in the jail (zonename token) and from the host both count.
//
// # Caveats
//
// The path inside the jail must not pass through a symlink: such a link is
// relative to the jail's root, and following it from the host could lead
// anywhere on the host. The jail's own root path on the host may be a
// symlink (a symlinked /usr/jails): it is resolved first.
package jail
