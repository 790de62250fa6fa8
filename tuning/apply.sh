#!/usr/bin/env bash
# Tune this host for N broker connections (root). Idempotent; undo with tuning/revert.sh.
#
#   tuning/apply.sh [--connections N] [--shards N] [--only-net] [--dry-run]
#
# Changes only the sysctls tuning/check.sh reports LOW, just as far as makes them OK (limits
# go up; the tcp_rmem/tcp_wmem default and the port range's low end go down), after saving
# the previous value to the backup file; a key already in the backup keeps its original
# there. Writes a sysctl.d drop-in so the values survive a reboot.
#   --only-net  touch only net.* keys writable in this network namespace (CI: unshare --net)
#   --dry-run   print what would change, change nothing
# Environment: SHARDMQ_TUNING_BACKUP (default /var/lib/shardmq/tuning.backup),
#              SHARDMQ_SYSCTL_DIR   (default /etc/sysctl.d; drop-in 90-shardmq.conf).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tuning/common.sh
. "$HERE/common.sh"

ONLY_NET=0
DRY_RUN=0
while (($#)); do
    case $1 in
    --connections) [[ $# -ge 2 ]] || tun_die "--connections needs a value"; CONNECTIONS=$2; shift 2 ;;
    --connections=*) CONNECTIONS=${1#*=}; shift ;;
    --shards) [[ $# -ge 2 ]] || tun_die "--shards needs a value"; SHARDS=$2; shift 2 ;;
    --shards=*) SHARDS=${1#*=}; shift ;;
    --only-net) ONLY_NET=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) tun_die "unknown argument '$1' (try --help)" ;;
    esac
done
tun_uint --connections "$CONNECTIONS"
tun_uint --shards "$SHARDS"

BACKUP=${SHARDMQ_TUNING_BACKUP:-/var/lib/shardmq/tuning.backup}
SYSCTL_DIR=${SHARDMQ_SYSCTL_DIR:-/etc/sysctl.d}
DROPIN=$SYSCTL_DIR/90-shardmq.conf

if ((!DRY_RUN)) && ((EUID != 0)); then
    tun_die "must run as root (or use --dry-run)"
fi

say() { printf '%s\n' "$*"; }

# The backup: a header, then one "PATH<TAB>ORIGINAL VALUE" line per changed setting, the
# value exactly as the kernel printed it. Only appended to; an existing line is never
# rewritten, so a second run cannot lose the original value.
backup_has() {
    [[ -f $BACKUP ]] && awk -F'\t' -v p="$1" '$1 == p { f = 1 } END { exit !f }' "$BACKUP"
}
backup_save() {
    local path=$1 raw=$2
    backup_has "$path" && return 0
    if [[ ! -f $BACKUP ]]; then
        mkdir -p "$(dirname "$BACKUP")"
        {
            echo "# shardmq tuning backup: original values, written by tuning/apply.sh on $(date -u +%FT%TZ)"
            echo "# restore with tuning/revert.sh (SHARDMQ_TUNING_BACKUP=$BACKUP)"
        } >"$BACKUP"
    fi
    printf '%s\t%s\n' "$path" "$raw" >>"$BACKUP"
}

CHANGED=0
FAILED=0

# set_value LABEL PATH NEW: back up, write, verify.
set_value() {
    local label=$1 path=$2 new=$3 raw
    raw=$(tun_read_raw "$path")
    if ((DRY_RUN)); then
        say "would set $label: $(tun_norm "$raw") -> $new"
        CHANGED=$((CHANGED + 1))
        return 0
    fi
    backup_save "$path" "$raw"
    if tun_write "$path" "$new"; then
        say "set $label: $(tun_norm "$raw") -> $new"
        CHANGED=$((CHANGED + 1))
    else
        say "FAILED $label: could not write $new (still $(tun_read "$path" || echo '?'))" >&2
        FAILED=$((FAILED + 1))
    fi
}

((DRY_RUN)) && say "dry run: nothing is changed"
say "tuning for $CONNECTIONS connections, $SHARDS shards; backup $BACKUP; drop-in $DROPIN"

for key in "${TUN_SYSCTLS[@]}"; do
    path=$(tun_path "$key")
    if ((ONLY_NET)) && ! tun_is_net "$key"; then
        continue
    fi
    if ! cur=$(tun_read "$key"); then
        say "skip $key: not present here"
        continue
    fi
    want=$(tun_desired "$key" "$cur")
    if [[ $want == "$cur" ]]; then
        say "ok   $key = $cur"
        continue
    fi
    if tun_in "$key" TUN_ADVICE_ONLY; then
        say "note $key = $cur: not changed (security setting); if you accept it: sysctl -w $key=$want"
        continue
    fi
    if [[ ! -w $path ]]; then
        say "skip $key = $cur: read-only here (set it in the host's network namespace)"
        continue
    fi
    set_value "$key" "$path" "$want"
done

# CPU frequency governor: sysfs, so not persisted by the drop-in (use cpupower/tuned for that).
if ((!ONLY_NET)); then
    while IFS= read -r f; do
        cur=$(tun_read_raw "$f") || continue
        [[ $cur == performance ]] && continue
        avail=$(tun_read_raw "${f%/*}/scaling_available_governors" || true)
        if [[ " $avail " != *" performance "* ]]; then
            say "skip $f = $cur: no 'performance' governor offered"
            continue
        fi
        set_value "$f" "$f" performance
    done < <(tun_governor_files)
fi

# The drop-in: every sysctl in the backup, at its current (tuned) value.
write_dropin() {
    local path key tmp n=0
    tmp=$(mktemp)
    {
        echo "# Written by shardmq tuning/apply.sh --connections $CONNECTIONS; removed by tuning/revert.sh."
        echo "# Original values: $BACKUP"
    } >"$tmp"
    while IFS=$'\t' read -r path _; do
        [[ $path == \#* || -z $path ]] && continue
        key=$(tun_key_of_path "$path")
        [[ -n $key ]] || continue
        printf '%s = %s\n' "$key" "$(tun_read "$key" || echo '')" >>"$tmp"
        n=$((n + 1))
    done <"$BACKUP"
    if ((n == 0)); then
        rm -f "$tmp"
        return 0
    fi
    mkdir -p "$SYSCTL_DIR"
    if [[ -f $DROPIN ]] && cmp -s <(grep -v '^#' "$tmp") <(grep -v '^#' "$DROPIN"); then
        say "drop-in $DROPIN unchanged"
        rm -f "$tmp"
    else
        chmod 644 "$tmp"
        mv "$tmp" "$DROPIN"
        say "wrote $DROPIN ($n keys)"
    fi
}
if ((!DRY_RUN)) && [[ -f $BACKUP ]]; then
    write_dropin
fi

need=$(tun_fds_needed)
say "limits: the service needs LimitNOFILE >= $need and LimitMEMLOCK=infinity (tuning/shardmq.service); a shell needs ulimit -n $need -l unlimited"
if ((FAILED)); then
    say "$CHANGED changed, $FAILED failed" >&2
    exit 1
fi
if ((DRY_RUN)); then say "$CHANGED would change"; else say "$CHANGED changed"; fi
