#!/usr/bin/env bash
# Undo tuning/apply.sh (root): restore every value in the backup exactly, remove the drop-in.
#
#   tuning/revert.sh [--only-net] [--dry-run]
#
#   --only-net  restore only net.* keys (CI: inside unshare --net); the rest stay in the
#               backup and the drop-in is rewritten with just those
#   --dry-run   print what would be restored, change nothing
# Environment: SHARDMQ_TUNING_BACKUP (default /var/lib/shardmq/tuning.backup),
#              SHARDMQ_SYSCTL_DIR   (default /etc/sysctl.d; drop-in 90-shardmq.conf).
# The backup is deleted once everything in it is restored.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tuning/common.sh
. "$HERE/common.sh"

ONLY_NET=0
DRY_RUN=0
while (($#)); do
    case $1 in
    --only-net) ONLY_NET=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) tun_die "unknown argument '$1' (try --help)" ;;
    esac
done

BACKUP=${SHARDMQ_TUNING_BACKUP:-/var/lib/shardmq/tuning.backup}
SYSCTL_DIR=${SHARDMQ_SYSCTL_DIR:-/etc/sysctl.d}
DROPIN=$SYSCTL_DIR/90-shardmq.conf

if ((!DRY_RUN)) && ((EUID != 0)); then
    tun_die "must run as root (or use --dry-run)"
fi
if [[ ! -f $BACKUP ]]; then
    echo "no backup at $BACKUP: nothing to revert"
    if [[ -f $DROPIN ]] && ((!DRY_RUN)) && ((!ONLY_NET)); then
        rm -f "$DROPIN"
        echo "removed $DROPIN"
    fi
    exit 0
fi

RESTORED=0
FAILED=0
header=()
keep=()
while IFS= read -r line; do
    if [[ $line == \#* || -z $line ]]; then
        header+=("$line")
        continue
    fi
    path=${line%%$'\t'*}
    orig=${line#*$'\t'}
    if ((ONLY_NET)) && ! tun_is_net "$path"; then
        keep+=("$line")
        continue
    fi
    label=$(tun_key_of_path "$path")
    label=${label:-$path}
    cur=$(tun_read_raw "$path" || echo '?')
    if ((DRY_RUN)); then
        echo "would restore $label: $(tun_norm "$cur") -> $(tun_norm "$orig")"
        RESTORED=$((RESTORED + 1))
        continue
    fi
    # Write the original exactly as the kernel printed it, then compare byte for byte.
    if printf '%s\n' "$orig" >"$path" 2>/dev/null && [[ $(tun_read_raw "$path" || true) == "$orig" ]]; then
        echo "restored $label: $(tun_norm "$cur") -> $(tun_norm "$orig")"
        RESTORED=$((RESTORED + 1))
    else
        echo "FAILED to restore $label to '$(tun_norm "$orig")' (now $(tun_norm "$(tun_read_raw "$path" || echo '?')"))" >&2
        keep+=("$line")
        FAILED=$((FAILED + 1))
    fi
done <"$BACKUP"

if ((DRY_RUN)); then
    echo "$RESTORED would be restored"
    exit 0
fi

if ((${#keep[@]} == 0)); then
    rm -f "$BACKUP"
    echo "removed $BACKUP"
    if [[ -f $DROPIN ]]; then
        rm -f "$DROPIN"
        echo "removed $DROPIN"
    fi
else
    # Keep what was not restored, and the drop-in entries for exactly those keys.
    printf '%s\n' "${header[@]}" "${keep[@]}" >"$BACKUP.tmp"
    mv "$BACKUP.tmp" "$BACKUP"
    echo "kept ${#keep[@]} entries in $BACKUP"
    if [[ -f $DROPIN ]]; then
        keys=()
        for line in "${keep[@]}"; do
            k=$(tun_key_of_path "${line%%$'\t'*}")
            [[ -n $k ]] && keys+=("$k")
        done
        if ((${#keys[@]} == 0)); then
            rm -f "$DROPIN"
            echo "removed $DROPIN (no sysctls left in the backup)"
        else
            awk -v keys="${keys[*]}" 'BEGIN { n = split(keys, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
            /^#/ { print; next } { k = $1; if (k in want) print }' "$DROPIN" >"$DROPIN.tmp"
            mv "$DROPIN.tmp" "$DROPIN"
            echo "rewrote $DROPIN with ${#keys[@]} keys"
        fi
    fi
fi

echo "$RESTORED restored, $FAILED failed"
((FAILED == 0))
