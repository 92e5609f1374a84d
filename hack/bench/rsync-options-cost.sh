#!/bin/bash
# rsync-options-cost.sh: what the prescribed rsync options and daemon
# settings cost by themselves, without any agent. N one-file pushes (4 KiB
# each, one after another, a fresh client each, as the lower bound's
# single files) to one rsync daemon on 127.0.6.2:18601 from 127.0.6.1;
# prints the wall time per push, the clients' CPU (bash's `times`) and the
# daemon's with its reaped children.
#
# usage: hack/bench/rsync-options-cost.sh VARIANT [N]
#   VARIANT "plain": `rsync -a FILE rsync://.../m/` to a plain daemon
#   (the bench's lower bound); otherwise the agent's client arguments
#   (nodeagent/rsync/args.go) with a list on standard input, plus what the
#   variant's name contains: H (--hard-links), item (--itemize-changes
#   twice, --out-format, --8-bit-output), stats (--stats), tmp
#   (--temp-dir=/.jailsync/tmp), and daemon settings as the agent writes
#   them (nodeagent/rsyncd/config.go): log (log file), auth (auth users,
#   secrets file), maxc (max connections, timeout), refuse (refuse
#   options), filter (the reserved directory's filter).
#   Example: for v in plain Hitemstatstmp-log-auth-maxc-refuse-filter; do
#   hack/bench/rsync-options-cost.sh $v 100; done
# Each list is read from a file, not a pipe: a pipe from bash forks a
# subshell per push, whose CPU `times` would count. Run as root (the
# daemon chroots). Measured in docs/benchmarks.md, the twenty-fifth session.
set -e
V=$1; N=${2:-200}
B=$(mktemp -d /tmp/rsync-options-cost.XXXXXX)
trap 'rm -rf "$B"' EXIT
mkdir -p $B/src $B/dst/.jailsync/tmp $B/dst/.jailsync/partial $B/state
for i in $(seq -w 1 $N); do head -c 4096 /dev/urandom > $B/src/f$i; printf './f%s\0' $i > $B/l$i; done
ADDR=127.0.6.2; PORT=18601
echo "jailsync:secretpw" > $B/state/secrets; chmod 600 $B/state/secrets
DCONF="address = $ADDR
port = $PORT
pid file = $B/state/pid
lock file = $B/state/lock
socket options = TCP_NODELAY
reverse lookup = no
listen backlog = 128
"
[[ $V == *log* ]] && DCONF+="log file = $B/state/log
"
MOD="[m]
path = $B/dst
use chroot = yes
munge symlinks = no
numeric ids = yes
uid = 0
gid = 0
read only = no
list = no
hosts allow = 127.0.6.1
hosts deny = *
"
[[ $V == *auth* ]] && MOD+="auth users = jailsync
secrets file = $B/state/secrets
strict modes = yes
"
[[ $V == *maxc* ]] && MOD+="max connections = 64
timeout = 300
"
[[ $V == *refuse* ]] && MOD+="refuse options = delete-* !delete-missing-args del remove-source-files remove-sent-files inplace append*
"
[[ $V == *filter* ]] && MOD+="filter = + /.jailsync/tmp/ + /.jailsync/tmp/list-* + /.jailsync/partial/ + /.jailsync/partial/* - /.jailsync/***
"
MOD+="transfer logging = no
"
printf '%s%s' "$DCONF" "$MOD" > $B/state/conf
rsync --daemon --no-detach --config=$B/state/conf & DPID=$!
sleep 0.3
export RSYNC_PASSWORD=secretpw
USER=
[[ $V == *auth* ]] && USER=jailsync@
URL=rsync://$USER$ADDR:$PORT/m/
if [[ $V == plain* ]]; then
  ARGS=(-a --sockopts=TCP_NODELAY --address=127.0.6.1)
else
  ARGS=(--links --perms --times --group --owner --devices --specials --numeric-ids --modify-window=-1 --relative --dirs --force --ignore-missing-args --from0 --files-from=- --address=127.0.6.1 --sockopts=TCP_NODELAY --contimeout=10 --timeout=30)
  [[ $V == *H* ]] && ARGS+=(--hard-links)
  [[ $V == *item* ]] && ARGS+=(--itemize-changes --itemize-changes "--out-format=%i %n%L" --8-bit-output)
  [[ $V == *stats* ]] && ARGS+=(--stats --no-human-readable)
  [[ $V == *tmp* ]] && ARGS+=(--temp-dir=/.jailsync/tmp)
fi
cd $B/src
t0=$(date +%s%N)
for i in $(seq -w 1 $N); do
  if [[ $V == plain* ]]; then rsync "${ARGS[@]}" f$i $URL >/dev/null
  else rsync "${ARGS[@]}" . $URL >/dev/null < $B/l$i; fi
done
t1=$(date +%s%N)
times > $B/times; ct=$(tail -1 $B/times)
sleep 0.2
read -r -a st < /proc/$DPID/stat
CLK=$(getconf CLK_TCK)
kill $DPID; wait $DPID 2>/dev/null || true
n=$(ls $B/dst | wc -l)
echo "$V pushes=$N wall_per_push_us=$(( (t1-t0)/N/1000 )) files=$n clients_user_sys='$ct' daemon_cpu_s=$(awk -v a=${st[13]} -v b=${st[14]} -v c=${st[15]} -v d=${st[16]} -v k=$CLK 'BEGIN{printf "%.2f", (a+b+c+d)/k}')"
