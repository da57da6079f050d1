#!/bin/sh
# deploy/netns/netns-cluster.sh: N "hosts" on one Linux machine, each a network namespace with
# its own address, for trying Tessera (or testing it) as a multi-host cluster, with links that
# can be cut and restored.
#
#   host i = namespace <prefix>-h<i>, interface eth0 = <subnet>.<i>/24
#            (a veth pair; its other end, <prefix>-v<i>, is a port of the bridge)
#   bridge <prefix>-br in the namespace this script runs in (normally the root one), with the
#            address <subnet>.254/24, so processes here (a gateway, a test) reach every host
#
# Run a node on host i with `netns-cluster.sh exec i node …` (or `ip netns exec <prefix>-h<i>`),
# and give it <subnet>.<i>:7373 as its address in cluster.yaml: every namespace has its own
# ports, so every node can use 7373.
#
# `cut i` sets the bridge end of host i's link down: its packets are dropped silently, as when
# a cable is pulled or a switch port dies (no reset, no error: peers only see timeouts).
# `restore i` sets it up again; established connections carry on where they stopped.
#
# Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2. POSIX sh.
set -eu

PREFIX=${NETNS_PREFIX:-tsr}
SUBNET=${NETNS_SUBNET:-10.77.0}

usage() {
  cat <<'EOF'
Usage: netns-cluster.sh [--prefix P] [--subnet A.B.C] COMMAND

Commands:
  up N         make hosts 1…N (namespaces, veth pairs, the bridge); fails, leaving nothing
               behind, if any of them exists already or the subnet is in use here
  down         remove everything made by `up` with this prefix: processes still running in the
               hosts' namespaces are killed (SIGKILL) first; nothing to remove is not an error
  cut I        cut host I's link (packets dropped silently)
  restore I    restore host I's link
  exec I CMD…  run CMD in host I's namespace (execs `ip netns exec`)
  ns I         print host I's namespace name
  addr I       print host I's address
  status       list the hosts with their addresses and link states

Options (or the environment variables in brackets):
  --prefix P      names start with P: 1 to 11 lowercase letters, digits (default tsr)
                  [NETNS_PREFIX]; a unique prefix per run keeps runs apart
  --subnet A.B.C  the /24 of the hosts (default 10.77.0) [NETNS_SUBNET]
EOF
}

die() {
  echo "netns-cluster: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || die '--prefix needs a value'; PREFIX=$2; shift 2 ;;
    --subnet) [ $# -ge 2 ] || die '--subnet needs a value'; SUBNET=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
CMD=$1
shift

# Interface names have at most 15 characters: <prefix>-v99 needs 4 beyond the prefix.
printf '%s\n' "$PREFIX" | grep -Eq '^[a-z0-9]{1,11}$' ||
  die "prefix \"$PREFIX\" must be 1 to 11 lowercase letters or digits"
printf '%s\n' "$SUBNET" | grep -Eq '^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$' ||
  die "subnet \"$SUBNET\" must be the first three numbers of an IPv4 /24, such as 10.77.0"

BRIDGE=$PREFIX-br
ns() { echo "$PREFIX-h$1"; }
veth() { echo "$PREFIX-v$1"; }

host_index() {
  printf '%s\n' "$1" | grep -Eq '^[1-9][0-9]?$' || die "host \"$1\" must be a number from 1 to 99"
  ip netns list | grep -q "^$(ns "$1")\( \|$\)" || die "no host $1 (namespace $(ns "$1"))"
}

# The namespaces of this prefix, one per line.
our_namespaces() {
  ip netns list | sed 's/ .*//' | grep -E "^$PREFIX-h[0-9]+$" || true
}

need_tools() {
  command -v ip >/dev/null 2>&1 || die 'needs iproute2 (the ip command)'
  [ "$(id -u)" = 0 ] || die 'needs root (network namespaces, veth pairs, a bridge)'
}

down() {
  for n in $(our_namespaces); do
    # Processes left inside would keep the namespace (and its veth) alive after `netns del`.
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    # shellcheck disable=SC2086 # one pid per word
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  for v in $(ip -o link show 2>/dev/null | sed -n "s/^[0-9]*: \($PREFIX-v[0-9]*\)[@:].*/\1/p"); do
    ip link del "$v" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}

up() {
  count=$1
  printf '%s\n' "$count" | grep -Eq '^[1-9][0-9]?$' || die "up: \"$count\" hosts: want 1 to 99"
  [ -z "$(our_namespaces)" ] || die "hosts of prefix $PREFIX exist already: run down first"
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "bridge $BRIDGE exists already: run down first"
  ! ip -4 -o addr show | grep -q " $(echo "$SUBNET" | sed 's/\./\\./g')\.[0-9]*/" ||
    die "subnet $SUBNET.0/24 is in use here already: choose another with --subnet"
  trap 'down' EXIT
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  i=1
  while [ "$i" -le "$count" ]; do
    n=$(ns "$i")
    v=$(veth "$i")
    ip netns add "$n"
    ip -n "$n" link set lo up
    ip link add "$v" type veth peer name "$PREFIX-p$i"
    ip link set "$PREFIX-p$i" netns "$n"
    ip -n "$n" link set "$PREFIX-p$i" name eth0
    ip -n "$n" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$n" link set eth0 up
    ip link set "$v" master "$BRIDGE"
    ip link set "$v" up
    echo "host $i: namespace $n, address $SUBNET.$i, link $v"
    i=$((i + 1))
  done
  trap - EXIT
}

status() {
  for i in $(our_namespaces | sed 's/.*-h//' | sort -n); do
    n=$(ns "$i")
    state=$(ip -o link show "$(veth "$i")" 2>/dev/null | grep -q 'state UP' && echo up || echo cut)
    addr=$(ip -n "$n" -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\).*/\1/p')
    echo "host $i: namespace $n, address ${addr:-none}, link $state"
  done
}

case $CMD in
  up) [ $# -eq 1 ] || die 'up N'; need_tools; up "$1" ;;
  down) need_tools; down ;;
  cut) [ $# -eq 1 ] || die 'cut I'; need_tools; host_index "$1"; ip link set "$(veth "$1")" down ;;
  restore)
    [ $# -eq 1 ] || die 'restore I'
    need_tools
    host_index "$1"
    ip link set "$(veth "$1")" up
    ;;
  exec)
    [ $# -ge 2 ] || die 'exec I CMD…'
    host_index "$1"
    n=$(ns "$1")
    shift
    exec ip netns exec "$n" "$@"
    ;;
  ns) [ $# -eq 1 ] || die 'ns I'; ns "$1" ;;
  addr) [ $# -eq 1 ] || die 'addr I'; echo "$SUBNET.$1" ;;
  status) status ;;
  *) usage >&2; exit 2 ;;
esac
