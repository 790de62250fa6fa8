# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared by tuning/check.sh, apply.sh and revert.sh: the managed settings, how each one's
# recommended value scales with the target connection count, and small helpers.
# Sourced, never run. Bash 4+.

# Must match FD_RESERVE_FIXED / FD_RESERVE_PER_SHARD in src/runtime/limits.rs
# (scripts/test-tuning.sh checks that they do).
TUN_FD_RESERVE_FIXED=64
TUN_FD_RESERVE_PER_SHARD=24

# Kernel slab bytes per idle TCP socket (tcp_sock + socket inode + file + dentry + epoll item),
# measured on Linux 6.18 with 12,000 loopback sockets: 3.8-4.1 KB. See tuning/README.md.
TUN_KERNEL_BYTES_PER_CONN=4096
# Broker bytes per idle connection: replace with the slope scripts/capacity.sh measures.
TUN_BROKER_BYTES_PER_CONN=${SHARDMQ_BROKER_BYTES_PER_CONN:-1024}

# Every sysctl the scripts know about, in display order.
TUN_SYSCTLS=(
    kernel.io_uring_disabled
    fs.nr_open
    fs.file-max
    net.core.somaxconn
    net.ipv4.tcp_max_syn_backlog
    net.ipv4.ip_local_port_range
    net.ipv4.tcp_mem
    net.ipv4.tcp_rmem
    net.ipv4.tcp_wmem
    net.core.rmem_max
    net.core.wmem_max
    net.core.netdev_max_backlog
    net.netfilter.nf_conntrack_max
)

# Sysctls apply.sh reports but never changes (a security decision for the admin).
TUN_ADVICE_ONLY=(kernel.io_uring_disabled)

CONNECTIONS=1000000
SHARDS=$(nproc 2>/dev/null || echo 1)

tun_die() {
    echo "${0##*/}: $*" >&2
    exit 2
}

# tun_uint NAME VALUE: VALUE must be a positive integer.
tun_uint() {
    if ! [[ $2 =~ ^[0-9]{1,15}$ ]] || (($2 == 0)); then
        tun_die "$1 needs a positive integer, got '${2}'"
    fi
}

tun_max() { if (($1 > $2)); then echo "$1"; else echo "$2"; fi; }
tun_min() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }

# File descriptors the broker needs: connections + fixed + per-shard reserve.
tun_fds_needed() {
    echo $((CONNECTIONS + TUN_FD_RESERVE_FIXED + TUN_FD_RESERVE_PER_SHARD * SHARDS))
}

# /proc/sys path of a dotted sysctl name.
tun_path() { printf '/proc/sys/%s' "${1//.//}"; }

# Squeeze whitespace (the kernel prints vectors with tabs): "a<TAB>b" -> "a b".
tun_norm() {
    local -a w
    read -ra w <<<"$1"
    printf '%s' "${w[*]}"
}

# tun_read_raw KEY_OR_PATH: the first line exactly as the kernel prints it; fails if absent.
tun_read_raw() {
    local p=$1 v=
    [[ $p == /* ]] || p=$(tun_path "$p")
    [[ -r $p ]] || return 1
    IFS= read -r v <"$p" || [[ -n $v ]] || return 1
    printf '%s' "$v"
}

# tun_read KEY: normalized current value; fails if the key does not exist here.
tun_read() {
    local v
    v=$(tun_read_raw "$1") || return 1
    tun_norm "$v"
}

# tun_write KEY_OR_PATH VALUE: write and verify by reading back (whitespace-insensitive).
tun_write() {
    local p=$1 got
    [[ $p == /* ]] || p=$(tun_path "$p")
    printf '%s\n' "$2" >"$p" 2>/dev/null || return 1
    got=$(tun_read_raw "$p") || return 1
    [[ $(tun_norm "$got") == "$(tun_norm "$2")" ]]
}

# Somaxconn / SYN backlog: scale with the connection count, within [4096, 65535].
tun_backlog() {
    local b=$((CONNECTIONS / 8))
    b=$(tun_max "$b" 4096)
    tun_min "$b" 65535
}

# tcp_mem in pages: C/2 (no pressure below), C (one page per connection with data in
# flight), 2C (hard ceiling, 8 KiB per connection).
tun_tcp_mem_target() {
    echo "$((CONNECTIONS / 2)) $CONNECTIONS $((CONNECTIONS * 2))"
}

# Default per-socket buffer cap: small defaults bound memory when many connections are busy.
tun_buf_default_cap() {
    if ((CONNECTIONS >= 100000)); then echo 16384; else echo 131072; fi
}

# tun_desired KEY CURRENT: the value KEY should have, derived from its current value (only
# what falls short is changed, nothing is ever lowered below the recommendation); equal to
# the normalized CURRENT when it already meets the recommendation.
tun_desired() {
    local key=$1 cur a b c t1 t2 t3
    cur=$(tun_norm "$2")
    case $key in
    kernel.io_uring_disabled) echo 0 ;;
    fs.nr_open) tun_max "$cur" "$(tun_max "$(tun_fds_needed)" 1048576)" ;;
    fs.file-max) tun_max "$cur" $((CONNECTIONS + CONNECTIONS / 4 + 65536)) ;;
    net.core.somaxconn | net.ipv4.tcp_max_syn_backlog) tun_max "$cur" "$(tun_backlog)" ;;
    net.ipv4.ip_local_port_range)
        read -r a b <<<"$cur"
        echo "$(tun_min "$a" 10000) $(tun_max "$b" 65535)"
        ;;
    net.ipv4.tcp_mem)
        read -r a b c <<<"$cur"
        read -r t1 t2 t3 <<<"$(tun_tcp_mem_target)"
        echo "$(tun_max "$a" "$t1") $(tun_max "$b" "$t2") $(tun_max "$c" "$t3")"
        ;;
    net.ipv4.tcp_rmem | net.ipv4.tcp_wmem)
        read -r a b c <<<"$cur"
        echo "$(tun_min "$a" 4096) $(tun_min "$b" "$(tun_buf_default_cap)") $(tun_max "$c" 4194304)"
        ;;
    net.core.rmem_max | net.core.wmem_max) tun_max "$cur" 16777216 ;;
    net.core.netdev_max_backlog) tun_max "$cur" 16384 ;;
    net.netfilter.nf_conntrack_max) tun_max "$cur" $((CONNECTIONS + CONNECTIONS / 4)) ;;
    *) echo "$cur" ;;
    esac
}

# tun_recommended KEY: the recommendation as shown in check.sh's table.
tun_recommended() {
    case $1 in
    kernel.io_uring_disabled) echo "0" ;;
    fs.nr_open) echo ">= $(tun_max "$(tun_fds_needed)" 1048576)" ;;
    fs.file-max) echo ">= $((CONNECTIONS + CONNECTIONS / 4 + 65536))" ;;
    net.core.somaxconn | net.ipv4.tcp_max_syn_backlog) echo ">= $(tun_backlog)" ;;
    net.ipv4.ip_local_port_range) echo "<=10000 >=65535" ;;
    net.ipv4.tcp_mem) echo ">= $(tun_tcp_mem_target)" ;;
    net.ipv4.tcp_rmem | net.ipv4.tcp_wmem) echo "<=4096 <=$(tun_buf_default_cap) >=4194304" ;;
    net.core.rmem_max | net.core.wmem_max) echo ">= 16777216" ;;
    net.core.netdev_max_backlog) echo ">= 16384" ;;
    net.netfilter.nf_conntrack_max) echo ">= $((CONNECTIONS + CONNECTIONS / 4))" ;;
    esac
}

# tun_why KEY: one line on why the setting matters.
tun_why() {
    case $1 in
    kernel.io_uring_disabled) echo "1 or 2 restricts or disables io_uring, which every shard runs on" ;;
    fs.nr_open) echo "per-process fd ceiling: RLIMIT_NOFILE's hard limit cannot exceed it" ;;
    fs.file-max) echo "system-wide open files: broker + load generator + everything else" ;;
    net.core.somaxconn) echo "caps the listen() backlog: a reconnect storm overflows it and SYNs are dropped" ;;
    net.ipv4.tcp_max_syn_backlog) echo "half-open connections queued per listener during a connect storm" ;;
    net.ipv4.ip_local_port_range) echo "load generator: outgoing connections per (source IP, broker IP:port)" ;;
    net.ipv4.tcp_mem) echo "pages for ALL TCP buffers; past pressure buffers shrink, past max packets drop" ;;
    net.ipv4.tcp_rmem) echo "per-socket receive buffer (min default max); small default bounds memory x N" ;;
    net.ipv4.tcp_wmem) echo "per-socket send buffer; small default keeps backpressure in the broker's bounds" ;;
    net.core.rmem_max) echo "ceiling for explicit SO_RCVBUF (bench, high-throughput links)" ;;
    net.core.wmem_max) echo "ceiling for explicit SO_SNDBUF (bench, high-throughput links)" ;;
    net.core.netdev_max_backlog) echo "per-CPU ingress packet queue; bursts beyond it are dropped" ;;
    net.netfilter.nf_conntrack_max) echo "one conntrack entry per connection; a full table drops new SYNs" ;;
    esac
}

# Is KEY in the list of namespaced net.* keys --only-net may touch?
tun_is_net() { [[ $1 == net.* || $1 == /proc/sys/net/* ]]; }

# Does the array named $2 contain $1?
tun_in() {
    local -n arr=$2
    local x
    for x in "${arr[@]}"; do [[ $x == "$1" ]] && return 0; done
    return 1
}

# Dotted sysctl name of a /proc/sys path ("" for anything else, e.g. sysfs).
tun_key_of_path() {
    [[ $1 == /proc/sys/* ]] || return 0
    local k=${1#/proc/sys/}
    printf '%s' "${k//\//.}"
}

# CPU frequency governor files (none in most VMs and containers).
tun_governor_files() {
    local f
    for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
        [[ -e $f ]] && printf '%s\n' "$f"
    done
    return 0
}
