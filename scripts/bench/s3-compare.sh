#!/usr/bin/env bash
# Berth on S3-compatible storage against CNCF Distribution 2.8 with its S3 driver, both
# on one private SeaweedFS (scripts/s3-server.sh), side by side in one run of
# registry-bench.py (see docs/performance.md).
#
#   scripts/bench/s3-compare.sh [proxied|redirect] [registry-bench.py options...]
#   NODES=3 scripts/bench/s3-compare.sh [proxied|redirect] [options...]
#
# proxied (default): both servers send blob bytes themselves (Distribution:
# storage.redirect.disable). redirect: both answer blob GETs with a presigned URL
# (Berth: --blob-redirect), which registry-bench follows to SeaweedFS on loopback.
# NODES=3: three nodes of each behind nginx (round-robin, bodies streamed): Berth's on a
# private PostgreSQL started here, Distribution's sharing one http.secret; CPU and
# memory are summed over the nodes.
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
    if [ -n "${PG_DIR:-}" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
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

NODES=${NODES:-1}
REDIRECT_OFF=true
[ "$MODE" = redirect ] && REDIRECT_OFF=false
wait_http() {
    for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    return 1
}

# Distribution: NODES processes on one config but their own port.
DIST_PORTS=()
DIST_PIDS=()
mkdir -p "$WORK/dist"
SECRET=$(head -c 24 /dev/urandom | base64)
for i in $(seq 1 "$NODES"); do
    port=$(free_port)
    cat >"$WORK/dist/config$i.yml" <<YML
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
http: {addr: 127.0.0.1:$port, secret: "$SECRET"}
YML
    # The AWS SDK inside Distribution fails on an AWS_CA_BUNDLE it cannot load this way.
    env -u REGISTRY_AUTH_FILE -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist/config$i.yml" >"$WORK/dist/log$i" 2>&1 &
    PIDS+=($!)
    DIST_PIDS+=($!)
    DIST_PORTS+=("$port")
done

# Berth: one node on SQLite, or NODES nodes on a private PostgreSQL.
BERTH_PORTS=()
BERTH_PIDS=()
META=()
if [ "$NODES" -gt 1 ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PG_PORT=$(free_port)
    # Outside $WORK, which only root may enter.
    PG_DIR=$(mktemp -d /tmp/berth-s3-bench-pg-XXXXXX)
    chown postgres "$PG_DIR"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" \
        -l "$PG_DIR/log" -w start >/dev/null
    META=(--metadata "postgres://postgres@127.0.0.1:$PG_PORT/postgres" --master-key-file "$WORK/master.key")
fi
BERTH_LB=$(free_port)
DIST_LB=$(free_port)
EXTRA=()
[ "$MODE" = redirect ] && EXTRA+=(--blob-redirect)
[ "$NODES" -gt 1 ] && EXTRA+=(--public-url "http://127.0.0.1:$BERTH_LB")
for i in $(seq 1 "$NODES"); do
    port=$(free_port)
    "$BERTH_BIN" serve --listen "127.0.0.1:$port" --data-dir "$WORK/berth$i" --dev --create-on-push \
        --blobs "s3://$S3_BUCKET/berth?endpoint=$S3_ENDPOINT&region=us-east-1" "${META[@]}" "${EXTRA[@]}" \
        >"$WORK/berth$i.out" 2>"$WORK/berth$i.err" &
    PIDS+=($!)
    BERTH_PIDS+=($!)
    BERTH_PORTS+=("$port")
    # The first node creates the schema before the others start.
    wait_http "http://127.0.0.1:$port/v2/" || { echo "Berth node $i did not start:" >&2; cat "$WORK/berth$i.err" >&2; exit 1; }
done
for port in "${DIST_PORTS[@]}"; do
    wait_http "http://127.0.0.1:$port/v2/" || { echo "Distribution did not start:" >&2; cat "$WORK"/dist/log* >&2; exit 1; }
done

join() { local IFS="$1"; shift; echo "$*"; }
if [ "$NODES" -gt 1 ]; then
    upstream() { for p in "$@"; do echo "        server 127.0.0.1:$p max_fails=0;"; done; }
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream berth {
$(upstream "${BERTH_PORTS[@]}")
        keepalive 64;
    }
    upstream distribution {
$(upstream "${DIST_PORTS[@]}")
        keepalive 64;
    }
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    proxy_set_header Host \$http_host;
    proxy_set_header Connection "";
    server { listen 127.0.0.1:$BERTH_LB; location / { proxy_pass http://berth; } }
    server { listen 127.0.0.1:$DIST_LB; location / { proxy_pass http://distribution; } }
}
CONF
    nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/stderr.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$BERTH_LB/v2/" && wait_http "http://127.0.0.1:$DIST_LB/v2/" \
        || { echo "nginx did not start:" >&2; cat "$WORK/nginx/stderr.log" "$WORK/nginx/error.log" >&2; exit 1; }
    DIST_URL="http://127.0.0.1:$DIST_LB"
    BERTH_URL="http://127.0.0.1:$BERTH_LB"
else
    DIST_URL="http://127.0.0.1:${DIST_PORTS[0]}"
    BERTH_URL="http://127.0.0.1:${BERTH_PORTS[0]}"
fi

python3 "$ROOT/scripts/bench/registry-bench.py" \
    --target "distribution-s3=$DIST_URL,pid=$(join + "${DIST_PIDS[@]}")" \
    --target "berth-s3=$BERTH_URL,pid=$(join + "${BERTH_PIDS[@]}"),user=AWS,password=dev" \
    "$@"
