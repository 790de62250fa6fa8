#!/usr/bin/env bash
# Read-only report: is this host tuned for N broker connections?
#
#   tuning/check.sh [--connections N] [--shards N]
#
# Prints one row per setting (current, recommended, OK/LOW, why). Changes nothing.
# Exit status: 0 all OK, 1 something is below recommendation (or could not be checked),
# 2 usage error. Limits shown are this shell's; a systemd service gets LimitNOFILE= and
# LimitMEMLOCK= from its unit instead (see tuning/shardmq.service).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tuning/common.sh
. "$HERE/common.sh"

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0"
}

while (($#)); do
    case $1 in
    --connections) [[ $# -ge 2 ]] || tun_die "--connections needs a value"; CONNECTIONS=$2; shift 2 ;;
    --connections=*) CONNECTIONS=${1#*=}; shift ;;
    --shards) [[ $# -ge 2 ]] || tun_die "--shards needs a value"; SHARDS=$2; shift 2 ;;
    --shards=*) SHARDS=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) tun_die "unknown argument '$1' (try --help)" ;;
    esac
done
tun_uint --connections "$CONNECTIONS"
tun_uint --shards "$SHARDS"

LOW=0
FMT='%-30s %-24s %-26s %-6s %s\n'

# row NAME CURRENT RECOMMENDED STATUS WHY
row() {
    # shellcheck disable=SC2059
    printf "$FMT" "$1" "$2" "$3" "$4" "$5"
    case $4 in OK | n/a) ;; *) LOW=$((LOW + 1)) ;; esac
}

# Actually set up an 8-entry io_uring (io_uring_setup is syscall 425 on every architecture).
# Prints "ok" or the errno name; exit 3 when no interpreter is available to try.
probe_io_uring() {
    local out
    if command -v perl >/dev/null 2>&1; then
        out=$(perl -e 'use POSIX (); my $p = "\0" x 120; my $fd = syscall(425, 8, $p);
            if ($fd < 0) { my $e = 0 + $!; my %n = (1 => "EPERM", 38 => "ENOSYS", 12 => "ENOMEM");
            print $n{$e} // "errno $e"; exit 1 } POSIX::close($fd); print "ok"') || true
    elif command -v python3 >/dev/null 2>&1; then
        out=$(python3 -c 'import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
p = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 8, p)
if fd < 0:
    e = ctypes.get_errno(); print(errno.errorcode.get(e, "errno %d" % e), end="")
else:
    os.close(fd); print("ok", end="")') || true
    else
        return 3
    fi
    printf '%s' "$out"
}

limit_str() { if [[ $1 == unlimited ]]; then echo unlimited; else echo "$1"; fi; }

NEED_FDS=$(tun_fds_needed)
CORES=$(nproc 2>/dev/null || echo 1)

echo "shardmq host check: $CONNECTIONS connections, $SHARDS shards, $CORES usable cores, kernel $(uname -r)"
echo
# shellcheck disable=SC2059
printf "$FMT" SETTING CURRENT RECOMMENDED STATUS WHY
# shellcheck disable=SC2059
printf "$FMT" ------- ------- ----------- ------ ---

# --- io_uring -----------------------------------------------------------------------------
if res=$(probe_io_uring); then
    case $res in
    ok) row "io_uring (probe)" "works" "works" OK "every shard runs its own io_uring" ;;
    EPERM) row "io_uring (probe)" "EPERM" "works" LOW "disabled: kernel.io_uring_disabled or a seccomp profile (Docker) blocks it" ;;
    ENOSYS) row "io_uring (probe)" "ENOSYS" "works" LOW "kernel too old (need 5.8+, 5.19+ recommended) or no CONFIG_IO_URING" ;;
    ENOMEM) row "io_uring (probe)" "ENOMEM" "works" LOW "RLIMIT_MEMLOCK too low: ulimit -l unlimited / LimitMEMLOCK=infinity" ;;
    *) row "io_uring (probe)" "${res:-failed}" "works" LOW "io_uring_setup failed" ;;
    esac
else
    row "io_uring (probe)" "not tried" "works" UNKNOWN "needs perl or python3 to call io_uring_setup"
fi

key=kernel.io_uring_disabled
if cur=$(tun_read "$key"); then
    if [[ $cur == 0 ]]; then st=OK; else st=LOW; fi
    row "$key" "$cur" "$(tun_recommended "$key")" "$st" "$(tun_why "$key")"
else
    row "$key" "absent" "0" n/a "kernel has no switch (before 6.6): io_uring is on"
fi

# --- file descriptors ---------------------------------------------------------------------
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
ok_fd() { [[ $1 == unlimited ]] || (($1 >= NEED_FDS)); }
if ok_fd "$soft"; then
    row "RLIMIT_NOFILE soft" "$(limit_str "$soft")" ">= $NEED_FDS" OK "1 fd per connection + $((NEED_FDS - CONNECTIONS)) reserve"
elif ok_fd "$hard"; then
    row "RLIMIT_NOFILE soft" "$(limit_str "$soft")" ">= $NEED_FDS" OK "below, but the broker raises soft to hard at start"
else
    row "RLIMIT_NOFILE soft" "$(limit_str "$soft")" ">= $NEED_FDS" LOW "1 fd per connection + $((NEED_FDS - CONNECTIONS)) reserve (ulimit -n)"
fi
if ok_fd "$hard"; then st=OK; else st=LOW; fi
row "RLIMIT_NOFILE hard" "$(limit_str "$hard")" ">= $NEED_FDS" "$st" "ceiling for soft: LimitNOFILE= / limits.conf, <= fs.nr_open"

for key in fs.nr_open fs.file-max; do
    if cur=$(tun_read "$key"); then
        if [[ $(tun_desired "$key" "$cur") == "$cur" ]]; then st=OK; else st=LOW; fi
        row "$key" "$cur" "$(tun_recommended "$key")" "$st" "$(tun_why "$key")"
    else
        row "$key" "unreadable" "$(tun_recommended "$key")" UNKNOWN "$(tun_why "$key")"
    fi
done

# --- locked memory (io_uring rings and registered buffers) --------------------------------
memlock=$(ulimit -Sl)
need_ml_kib=$((SHARDS * 65536))
if [[ $memlock == unlimited ]] || ((memlock >= need_ml_kib)); then st=OK; else st=LOW; fi
if [[ $memlock == unlimited ]]; then ml_show=unlimited; else ml_show="$memlock KiB"; fi
row "RLIMIT_MEMLOCK" "$ml_show" "unlimited (>= $need_ml_kib KiB)" "$st" "io_uring rings and each shard's registered receive-buffer ring are locked memory"

# --- network ------------------------------------------------------------------------------
for key in "${TUN_SYSCTLS[@]}"; do
    [[ $key == net.* ]] || continue
    if ! cur=$(tun_read "$key"); then
        if [[ $key == net.netfilter.* ]]; then
            row "$key" "not loaded" "$(tun_recommended "$key")" n/a "conntrack not loaded: nothing to size"
        elif [[ $key == net.ipv4.tcp_mem || $key == net.core.netdev_max_backlog ]] && [[ -e /proc/sys/net/ipv4/tcp_rmem ]]; then
            row "$key" "host-only" "$(tun_recommended "$key")" n/a "global key, not visible in this network namespace"
        else
            row "$key" "absent" "$(tun_recommended "$key")" UNKNOWN "$(tun_why "$key")"
        fi
        continue
    fi
    if [[ $(tun_desired "$key" "$cur") == "$cur" ]]; then st=OK; else st=LOW; fi
    row "$key" "$cur" "$(tun_recommended "$key")" "$st" "$(tun_why "$key")"
done

# --- CPU ----------------------------------------------------------------------------------
mapfile -t govs < <(tun_governor_files)
if ((${#govs[@]} == 0)); then
    row "cpu frequency governor" "no cpufreq" "performance" n/a "not exposed (VM/container): the host decides"
else
    declare -A seen=()
    for f in "${govs[@]}"; do seen[$(tun_read_raw "$f" || echo '?')]=1; done
    cur=$(printf '%s\n' "${!seen[@]}" | sort | paste -sd, -)
    if [[ $cur == performance ]]; then st=OK; else st=LOW; fi
    row "cpu frequency governor" "$cur" "performance" "$st" "powersave/ondemand add wake-up latency and cut msg/s"
fi

if ((SHARDS <= CORES)); then st=OK; else st=LOW; fi
row "shards vs cores" "$SHARDS shards / $CORES cores" "shards <= cores" "$st" "one pinned shard per core; extra shards share a core"

# --- memory -------------------------------------------------------------------------------
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
per_conn=$((TUN_KERNEL_BYTES_PER_CONN + TUN_BROKER_BYTES_PER_CONN))
need_mib=$((CONNECTIONS * per_conn / 1048576 + 1024))
if ((mem_kib / 1024 >= need_mib)); then st=OK; else st=LOW; fi
row "host memory (MemTotal)" "$((mem_kib / 1024)) MiB" ">= $need_mib MiB" "$st" "idle estimate: ${TUN_KERNEL_BYTES_PER_CONN} B kernel + ${TUN_BROKER_BYTES_PER_CONN} B broker per conn + 1 GiB"

echo
if ((LOW == 0)); then
    echo "all OK for $CONNECTIONS connections"
    exit 0
fi
echo "$LOW setting(s) below recommendation for $CONNECTIONS connections: sudo tuning/apply.sh --connections $CONNECTIONS (sysctls), LimitNOFILE=/LimitMEMLOCK= in tuning/shardmq.service (limits); see tuning/README.md"
exit 1
