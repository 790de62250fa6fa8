#!/usr/bin/env bash
# CI test for tuning/: shellcheck, check.sh, and apply.sh / revert.sh round trip inside a
# throw-away network namespace (unshare --net), proving the host is left untouched.
#
#   bash scripts/test-tuning.sh        (root; needs shellcheck and unshare)
#
# Prints "N passed, 0 failed" on success; exits non-zero on any failure.
# Each assertion is a command followed by `t NAME`, which records its exit status (so no
# `set -e` here: a failing assertion must be counted, not abort the run).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 1
cd "$ROOT" || exit 1

# --- inside the namespace (re-entered by the outer run) -----------------------------------
# Results go to $T/results as "PASS ..." / "FAIL ..." lines; the outer run counts them.
if [[ ${1-} == --inside-netns ]]; then
    T=$2
    export SHARDMQ_TUNING_BACKUP=$T/backup SHARDMQ_SYSCTL_DIR=$T/sysctl.d
    # shellcheck source=tuning/common.sh
    . tuning/common.sh
    pass() { echo "PASS $*" | tee -a "$T/results"; }
    fail() { echo "FAIL $*" | tee -a "$T/results"; }
    t() { if (($? == 0)); then pass "$1"; else fail "$1"; fi; }

    # Every namespaced key and its value before anything runs.
    declare -A before=()
    for k in "${TUN_SYSCTLS[@]}"; do
        [[ $k == net.* ]] || continue
        if v=$(tun_read_raw "$k"); then before[$k]=$v; fi
    done
    ((${#before[@]} >= 5))
    t "netns: some net.* keys are readable"

    out=$(tuning/apply.sh --only-net --dry-run --connections 1000000 2>&1) && rc=0 || rc=$?
    ((rc == 0))
    t "apply --dry-run exits 0"
    [[ $out == *"would set net.core.somaxconn"* ]]
    t "apply --dry-run announces changes"
    same=1
    for k in "${!before[@]}"; do [[ $(tun_read_raw "$k") == "${before[$k]}" ]] || same=0; done
    ((same)) && [[ ! -e $T/backup && ! -e $T/sysctl.d ]]
    t "apply --dry-run changes nothing"

    # Small target first, then the big one: the backup must keep the FIRST original values.
    out1=$(tuning/apply.sh --only-net --connections 1000 2>&1) && rc=0 || rc=$?
    ((rc == 0))
    t "apply --connections 1000 exits 0"
    [[ ${before[net.ipv4.tcp_max_syn_backlog]} != 2048 ]] || [[ $out1 == *"set net.ipv4.tcp_max_syn_backlog: 2048 -> 4096"* ]]
    t "apply (1000) raised tcp_max_syn_backlog 2048 -> 4096"
    out2=$(tuning/apply.sh --only-net --connections 1000000 2>&1) && rc=0 || rc=$?
    printf "%s\n" "$out2" | sed 's/^/    apply: /'
    ((rc == 0))
    t "apply --connections 1000000 exits 0"

    # Each reported change took effect, and each key now meets the recommendation.
    n_set=0
    while IFS= read -r line; do
        [[ $line =~ ^set\ ([a-z0-9_.]+):\ (.*)\ -\>\ (.*)$ ]] || continue
        k=${BASH_REMATCH[1]} old=${BASH_REMATCH[2]} new=${BASH_REMATCH[3]}
        n_set=$((n_set + 1))
        now=$(tun_read "$k")
        [[ $now == "$new" && $now != "$old" ]]
        t "$k changed to $new"
        [[ $(tun_desired "$k" "$now") == "$now" ]]
        t "$k meets the recommendation"
        grep -qx "$k = $new" "$T/sysctl.d/90-shardmq.conf"
        t "$k is in the drop-in"
    done <<<"$out2"
    ((n_set >= 3))
    t "apply changed at least 3 keys"
    [[ $(tun_read net.core.somaxconn) == 65535 ]]
    t "somaxconn is now 65535"
    grep -qxP "/proc/sys/net/ipv4/tcp_max_syn_backlog\t\Q${before[net.ipv4.tcp_max_syn_backlog]}\E" "$T/backup"
    t "backup keeps first original of tcp_max_syn_backlog"
    [[ -z $(grep -v "^#" "$T/backup" | cut -f1 | sort | uniq -d) ]]
    t "backup has one line per key"
    awk -F'\t' '!/^#/ && $1 !~ /^\/proc\/sys\/net\// { bad = 1 } END { exit bad }' "$T/backup"
    t "backup holds only net keys"

    # Idempotent: a second run changes nothing, not even the backup.
    cp "$T/backup" "$T/backup.1"
    cp "$T/sysctl.d/90-shardmq.conf" "$T/dropin.1"
    out3=$(tuning/apply.sh --only-net --connections 1000000 2>&1) && rc=0 || rc=$?
    ((rc == 0)) && grep -qx "0 changed" <<<"$out3" && ! grep -q "^set " <<<"$out3"
    t "second apply exits 0 and changes nothing"
    cmp -s "$T/backup" "$T/backup.1"
    t "second apply leaves the backup byte-identical"
    cmp -s "$T/sysctl.d/90-shardmq.conf" "$T/dropin.1"
    t "second apply leaves the drop-in identical"

    out4=$(tuning/check.sh --connections 1000000 2>&1) && rc=0 || rc=$?
    [[ $(grep "^net.core.somaxconn " <<<"$out4") == *" OK "* ]]
    t "check.sh after apply reports somaxconn OK"

    # Revert: every value back exactly (byte for byte as the kernel prints it).
    out5=$(tuning/revert.sh --only-net 2>&1) && rc=0 || rc=$?
    printf "%s\n" "$out5" | sed 's/^/    revert: /'
    ((rc == 0))
    t "revert exits 0"
    for k in "${!before[@]}"; do
        now=$(tun_read_raw "$k")
        [[ $now == "${before[$k]}" ]]
        t "$k restored exactly"
    done
    [[ ! -e $T/backup && ! -e $T/sysctl.d/90-shardmq.conf ]]
    t "revert removed backup and drop-in"
    out6=$(tuning/revert.sh --only-net 2>&1) && rc=0 || rc=$?
    ((rc == 0)) && [[ $out6 == *"nothing to revert"* ]]
    t "second revert is a no-op"
    exit 0
fi

# --- outer run ----------------------------------------------------------------------------
PASSED=0
FAILED=0
pass() { echo "PASS $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $*"; FAILED=$((FAILED + 1)); }
t() { if (($? == 0)); then pass "$1"; else fail "$1"; fi; }

if ! command -v shellcheck >/dev/null 2>&1; then
    echo "FAIL shellcheck is not installed (apt-get install -y shellcheck)" >&2
    exit 1
fi
((EUID == 0)) || { echo "FAIL must run as root (unshare --net, /proc/sys writes)" >&2; exit 1; }
command -v unshare >/dev/null 2>&1 || { echo "FAIL unshare (util-linux) is missing" >&2; exit 1; }

# 1. shellcheck every script under tuning/ and scripts/.
mapfile -t scripts < <(find tuning scripts -type f \( -name '*.sh' -o -name '*.bash' \) | sort)
((${#scripts[@]} >= 5))
t "found scripts to lint (${#scripts[@]})"
for s in "${scripts[@]}"; do
    if out=$(shellcheck -x -P SCRIPTDIR -P "$ROOT" "$s" 2>&1); then
        pass "shellcheck $s"
    else
        echo "$out"
        fail "shellcheck $s"
    fi
done

# 2. The reserve constants agree with the broker.
# shellcheck source=tuning/common.sh
. tuning/common.sh
grep -q "FD_RESERVE_FIXED: u64 = $TUN_FD_RESERVE_FIXED;" src/runtime/limits.rs &&
    grep -q "FD_RESERVE_PER_SHARD: u64 = $TUN_FD_RESERVE_PER_SHARD;" src/runtime/limits.rs
t "FD reserve constants match src/runtime/limits.rs"

# 3. check.sh runs and prints the table (exit 0 or 1 both fine here; 2+ is a bug).
out=$(tuning/check.sh 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/    check: /'
((rc == 0 || rc == 1))
t "check.sh exits 0 or 1 (got $rc)"
for row in "io_uring (probe)" "RLIMIT_NOFILE soft" "RLIMIT_NOFILE hard" fs.nr_open fs.file-max \
    RLIMIT_MEMLOCK net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.ip_local_port_range \
    net.ipv4.tcp_mem net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.rmem_max net.core.wmem_max \
    net.core.netdev_max_backlog net.netfilter.nf_conntrack_max kernel.io_uring_disabled \
    "cpu frequency governor" "shards vs cores"; do
    awk -v r="$row" 'index($0, r " ") == 1 && / (OK|LOW|n\/a|UNKNOWN) / { f = 1 } END { exit !f }' <<<"$out"
    t "check.sh prints a row for $row"
done
if grep -qE " (LOW|UNKNOWN) " <<<"$out"; then ((rc == 1)); else ((rc == 0)); fi
t "check.sh exit status matches its rows"
small=$(tuning/check.sh --connections 100 --shards 1 2>&1) && rc=0 || rc=$?
((rc == 0 || rc == 1)) && [[ $small == *"100 connections, 1 shards"* ]]
t "check.sh --connections 100 runs (rc $rc)"
[[ $(grep "^fs.file-max " <<<"$small") == *">= 65661"* && $(grep "^fs.file-max " <<<"$out") == *">= 1315536"* ]]
t "recommendations scale with --connections"
tuning/check.sh --connections nope >/dev/null 2>&1 && rc=0 || rc=$?
((rc == 2))
t "check.sh rejects a bad argument with exit 2"

# 4. apply/revert inside a private network namespace; the host must not move.
host_keys=(fs.file-max fs.nr_open kernel.io_uring_disabled "${TUN_SYSCTLS[@]}")
snapshot() {
    local k
    for k in "${host_keys[@]}"; do printf '%s=%s\n' "$k" "$(tun_read_raw "$k" || echo ABSENT)"; done
    while IFS= read -r f; do printf '%s=%s\n' "$f" "$(tun_read_raw "$f")"; done < <(tun_governor_files)
    find /etc/sysctl.d -maxdepth 1 -type f -exec sha256sum {} + 2>/dev/null | sort
    ls -la /var/lib/shardmq 2>/dev/null || echo "no /var/lib/shardmq"
}
host_before=$(snapshot)
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
: >"$T/results"
if unshare --net bash "$0" --inside-netns "$T"; then
    pass "netns run finished"
else
    fail "netns run exited non-zero"
fi
PASSED=$((PASSED + $(grep -c '^PASS' "$T/results" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL' "$T/results" || true)))
[[ -s $T/results ]]
t "netns run reported results"
host_after=$(snapshot)
if [[ $host_before == "$host_after" ]]; then
    pass "host sysctls, governors, /etc/sysctl.d and /var/lib/shardmq untouched"
else
    diff <(echo "$host_before") <(echo "$host_after") || true
    fail "host state changed"
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
