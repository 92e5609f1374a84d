#!/bin/bash
# rsync-burst-cost.sh: what one push of a burst (N x 4 KiB files in one
# directory, in one run) costs through each form of the prescribed
# interface, without any agent: to one rsync daemon on 127.0.6.2:18602 from
# 127.0.6.1, both ends on a tmpfs of their own (the bench's roots are), R
# pushes per variant into an emptied destination. Prints the wall time per
# push, the client's CPU per push (/usr/bin/time) and the daemon's with its
# reaped children per push.
#
# usage: hack/bench/rsync-burst-cost.sh VARIANT [R] [N]
#   plain       `rsync -a DIR/` (the bench's lower bound)
#   local       the agent's client arguments (nodeagent/rsync/args.go) with
#               the --from0 list in a local file (as on standard input:
#               rsync reads it one byte per read(2))
#   peer        the same with the list written on the peer and read there
#               (--files-from=:PATH, as the agent hands over a long list)
#   peer-tmp    peer, with --temp-dir=/.jailsync/tmp (what the agent ran
#               from the twenty-fifth to the twenty-ninth session)
#   peer-tmprel peer, with the relative --temp-dir=.jailsync/tmp
#   local-tmp   local, with --temp-dir=/.jailsync (what the agent runs since
#               the seventy-seventh session: rsyncd.TempDir)
#   recurse     the agent's arguments with -r and a list of one name, the
#               directory (rsync walks it as rsync -a does)
# Example: for v in plain peer peer-tmp recurse; do
#   hack/bench/rsync-burst-cost.sh $v 10; done
# Run as root (a tmpfs mount; the daemon chroots). Measured in
# docs/benchmarks.md, the twenty-sixth session.
set -e
V=$1; R=${2:-10}; N=${3:-2000}
B=$(mktemp -d /tmp/rsync-burst-cost.XXXXXX)
mount -t tmpfs -o size=512m rsync-burst-cost "$B"
cleanup() {
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	umount -l "$B"; rmdir "$B"
}
trap cleanup EXIT
mkdir -p "$B/src/burst" "$B/dst" "$B/state"
for i in $(seq -w 1 "$N"); do head -c 4096 /dev/urandom > "$B/src/burst/f$i"; done
(cd "$B/src" && find burst -type f -printf './%p\0') > "$B/list"
printf './burst\0' > "$B/list1"
ADDR=127.0.6.2; PORT=18602
cat > "$B/state/conf" <<EOF
address = $ADDR
port = $PORT
pid file = $B/state/pid
socket options = TCP_NODELAY
reverse lookup = no
[m]
path = $B/dst
use chroot = yes
munge symlinks = no
numeric ids = yes
uid = 0
gid = 0
read only = no
hosts allow = 127.0.6.1
EOF
rsync --daemon --no-detach --config="$B/state/conf" & DPID=$!
sleep 0.3
URL=rsync://$ADDR:$PORT/m/
AGENT=(--links --perms --times --group --owner --devices --specials --numeric-ids --modify-window=-1 --relative --dirs --force --ignore-missing-args --from0 --address=127.0.6.1 --sockopts=TCP_NODELAY --contimeout=10 --timeout=30 --hard-links --itemize-changes --itemize-changes "--out-format=%i %n%L" --8-bit-output --stats)
case $V in
plain) ARGS=(-a --sockopts=TCP_NODELAY --address=127.0.6.1 ./) ;;
local) ARGS=("${AGENT[@]}" "--files-from=$B/list" .) ;;
peer) ARGS=("${AGENT[@]}" --files-from=:/list .) ;;
peer-tmp) ARGS=("${AGENT[@]}" --temp-dir=/.jailsync/tmp --files-from=:/list .) ;;
peer-tmprel) ARGS=("${AGENT[@]}" --temp-dir=.jailsync/tmp --files-from=:/list .) ;;
local-tmp) ARGS=("${AGENT[@]}" --temp-dir=/.jailsync "--files-from=$B/list" .) ;;
recurse) ARGS=("${AGENT[@]}" -r "--files-from=$B/list1" .) ;;
*) echo "unknown variant $V" >&2; exit 2 ;;
esac
cd "$B/src"
tot=0
for r in $(seq 1 "$R"); do
	find "$B/dst" -mindepth 1 -delete
	cp "$B/list" "$B/dst/list"; mkdir -p "$B/dst/.jailsync/tmp"
	sleep 0.2
	t0=$(date +%s%N)
	/usr/bin/time -a -o "$B/client" -f "%U %S" rsync "${ARGS[@]}" "$URL" > /dev/null
	t1=$(date +%s%N); tot=$((tot + t1 - t0))
done
n=$(find "$B/dst/burst" -type f | wc -l)
read -r -a st < "/proc/$DPID/stat"
CLK=$(getconf CLK_TCK)
echo "$V pushes=$R files=$n wall_per_push_ms=$((tot / R / 1000000))" \
	"client_cpu_per_push_s=$(awk '{s += $1 + $2} END {printf "%.3f", s / NR}' "$B/client")" \
	"daemon_cpu_per_push_s=$(awk -v a="${st[13]}" -v b="${st[14]}" -v c="${st[15]}" -v d="${st[16]}" -v k="$CLK" -v r="$R" 'BEGIN {printf "%.3f", (a + b + c + d) / k / r}')"
