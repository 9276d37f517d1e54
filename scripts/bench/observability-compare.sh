#!/usr/bin/env bash
# The cost of metrics and the audit trail (issue 18): two Berth servers from one binary,
# one with metrics and the audit trail on, one with both off, side by side
# in one run of registry-bench.py (manifest GETs by wrk, small pushes), alternating
# rounds. See docs/performance.md.
#
#   scripts/bench/observability-compare.sh [registry-bench.py options...]
#
# BERTH_BIN names the binary (default target/release/berth). Both listen on 127.0.0.1
# and are stopped, by PID, at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
WORK=$(mktemp -d /tmp/berth-observe-bench-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# AUDIT_PULLS=true also audits every manifest and blob GET (off by default, as in the
# default configuration: then "on" is Berth's defaults).
cat >"$WORK/on.toml" <<TOML
[audit]
pushes = true
pulls = ${AUDIT_PULLS:-false}
TOML
cat >"$WORK/off.toml" <<TOML
[metrics]
enabled = false
[audit]
enabled = false
TOML

TARGETS=()
for mode in off on; do
    dir="$WORK/$mode"
    "$BERTH_BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" --config "$WORK/$mode.toml" \
        --create-on-push --lifecycle-interval 0 --gc-interval 0 >"$WORK/$mode.out" 2>"$WORK/$mode.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do grep -q "berth listening" "$WORK/$mode.out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^berth listening on //p' "$WORK/$mode.out" | head -1)
    pw=$("$BERTH_BIN" admin login-password --data-dir "$dir")
    TARGETS+=(--target "$mode=$url,pid=$pid,user=AWS,password=$pw")
done

python3 "$ROOT/scripts/bench/registry-bench.py" "${TARGETS[@]}" --data-dir "$WORK/bench" "$@"
echo "audit records stored by the 'on' server:" >&2
"$BERTH_BIN" admin events --data-dir "$WORK/on" --limit 1000000 | wc -l >&2
