#!/usr/bin/env bash
# Berth's reference benchmark script (see docs/performance.md).
# Start CNCF Distribution (Debian package docker-registry, 2.8) on loopback as the
# side-by-side reference for registry-bench.py. Installs the package if missing.
# Usage: distribution.sh [PORT]   -> prints "PID URL" on stdout; stop it with: kill PID
# Filesystem storage in a fresh temp dir, no auth, access log off (as in the baseline).
set -eu
PORT=${1:-5055}
if ! command -v docker-registry >/dev/null; then
  apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends docker-registry >/dev/null \
    || apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends docker-registry >/dev/null
fi
DIR=$(mktemp -d /tmp/distribution-XXXXXX)
cat > "$DIR/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  cache: {blobdescriptor: inmemory}
  filesystem: {rootdirectory: $DIR/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$PORT}
YML
# docker-registry reads every REGISTRY_* variable as a config override.
env -u REGISTRY_AUTH_FILE docker-registry serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
echo "$PID http://127.0.0.1:$PORT"
