#!/usr/bin/env bash
# Berth on S3-compatible storage against CNCF Distribution 2.8 with its S3 driver, both
# on one private SeaweedFS (scripts/s3-server.sh), side by side in one run of
# registry-bench.py (see docs/performance.md).
#
#   scripts/bench/s3-compare.sh [proxied|redirect] [registry-bench.py options...]
#
# proxied (default): both servers send blob bytes themselves (Distribution:
# storage.redirect.disable). redirect: both answer blob GETs with a presigned URL
# (Berth: --blob-redirect), which registry-bench follows to SeaweedFS on loopback.
# BERTH_BIN names the binary (default target/release/berth). Everything listens on
# 127.0.0.1 and is stopped, by PID, at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODE=${1:-proxied}
shift || true
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
WORK=$(mktemp -d /tmp/berth-s3-bench-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # SeaweedFS may take long to honour SIGTERM: it is only a benchmark's scratch store.
    if [ -f "$WORK/s3/env" ]; then . "$WORK/s3/env"; kill -KILL "$S3_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v docker-registry >/dev/null || apt-get install -y -q --no-install-recommends docker-registry >/dev/null
bash "$ROOT/scripts/s3-server.sh" "$WORK/s3"
# shellcheck disable=SC1091
. "$WORK/s3/env"
export BERTH_S3_ACCESS_KEY_ID BERTH_S3_SECRET_ACCESS_KEY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DIST_PORT=$(free_port)
REDIRECT_OFF=true
[ "$MODE" = redirect ] && REDIRECT_OFF=false
mkdir -p "$WORK/dist"
cat >"$WORK/dist/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  cache: {blobdescriptor: inmemory}
  delete: {enabled: true}
  redirect: {disable: $REDIRECT_OFF}
  s3:
    region: us-east-1
    regionendpoint: $S3_ENDPOINT
    bucket: $S3_BUCKET
    accesskey: $BERTH_S3_ACCESS_KEY_ID
    secretkey: $BERTH_S3_SECRET_ACCESS_KEY
    secure: false
    v4auth: true
    rootdirectory: /distribution
http: {addr: 127.0.0.1:$DIST_PORT}
YML
# The AWS SDK inside Distribution fails on an AWS_CA_BUNDLE it cannot load this way.
env -u REGISTRY_AUTH_FILE -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist/config.yml" >"$WORK/dist/log" 2>&1 &
PIDS+=($!)
DIST_PID=$!

BERTH_PORT=$(free_port)
EXTRA=()
[ "$MODE" = redirect ] && EXTRA+=(--blob-redirect)
"$BERTH_BIN" serve --listen "127.0.0.1:$BERTH_PORT" --data-dir "$WORK/berth" --dev --create-on-push \
    --blobs "s3://$S3_BUCKET/berth?endpoint=$S3_ENDPOINT&region=us-east-1" "${EXTRA[@]}" \
    >"$WORK/berth.out" 2>"$WORK/berth.err" &
PIDS+=($!)
BERTH_PID=$!

for url in "http://127.0.0.1:$DIST_PORT/v2/" "http://127.0.0.1:$BERTH_PORT/v2/"; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
done
kill -0 "$DIST_PID" 2>/dev/null || { echo "Distribution did not start:" >&2; cat "$WORK/dist/log" >&2; exit 1; }
kill -0 "$BERTH_PID" 2>/dev/null || { echo "Berth did not start:" >&2; cat "$WORK/berth.err" >&2; exit 1; }

python3 "$ROOT/scripts/bench/registry-bench.py" \
    --target "distribution-s3=http://127.0.0.1:$DIST_PORT,pid=$DIST_PID" \
    --target "berth-s3=http://127.0.0.1:$BERTH_PORT,pid=$BERTH_PID,user=AWS,password=dev" \
    "$@"
