#!/usr/bin/env bash
# Berth's reference benchmark script (see docs/performance.md).
# Physical limits of this machine for an OCI registry's hot paths.
# Usage: bash limits.sh [scratch-dir]   (default $(mktemp -d))
# Needs: openssl, coreutils, python3, mbw, iperf3, curl (apt-get install mbw iperf3 curl).
# Sends traffic to 127.0.0.1 only. Every step is bounded in time.
set -u
S=${1:-$(mktemp -d)}
mkdir -p "$S"
IPERF_PORT=${IPERF_PORT:-5211}
HTTP_PORT=${HTTP_PORT:-8611}

echo "== date: $(date -Is)  host: $(uname -r)  nproc: $(nproc)"
echo "== load before: $(cat /proc/loadavg)"
echo "== cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)  sha_ni: $(grep -c -w sha_ni /proc/cpuinfo) of $(nproc) cpus"

echo "== openssl speed -evp sha256 (16 KiB blocks, 3 s, single core)"
openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | tail -1
openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | tail -1

if [ ! -f "$S/rand-2g.bin" ]; then
  head -c 2147483648 /dev/urandom > "$S/rand-2g.bin"
fi
cat "$S/rand-2g.bin" > /dev/null   # warm the page cache
cat "$S/rand-2g.bin" > /dev/null
echo "== sha256sum (coreutils, no SHA-NI) on 2 GiB file in page cache"
for i in 1 2 3; do /usr/bin/time -f "sha256sum: %e s elapsed, %U s user, %S s sys" sha256sum "$S/rand-2g.bin" >/dev/null; done
echo "== openssl dgst -sha256 (SHA-NI) on 2 GiB file in page cache"
for i in 1 2 3; do /usr/bin/time -f "openssl dgst: %e s elapsed, %U s user, %S s sys" openssl dgst -sha256 "$S/rand-2g.bin" >/dev/null; done

echo "== memory copy bandwidth (mbw memcpy, 1 GiB arrays, 5 runs)"
timeout 120 mbw -q -n 5 -t0 1024 | tail -1
echo "== memory copy bandwidth (mbw MCBLOCK 1 GiB arrays, 5 runs)"
timeout 120 mbw -q -n 5 -t2 1024 | tail -1

echo "== sequential write to $S (ext4 on /dev/vda): 2 GiB random data from page cache"
for i in 1 2; do
  rm -f "$S/dd-out.bin"; sync
  echo -n "dd conv=fdatasync: "; timeout 300 dd if="$S/rand-2g.bin" of="$S/dd-out.bin" bs=1M conv=fdatasync 2>&1 | tail -1
  rm -f "$S/dd-out.bin"; sync
  echo -n "dd (page cache, no sync): "; timeout 300 dd if="$S/rand-2g.bin" of="$S/dd-out.bin" bs=1M 2>&1 | tail -1
  sync
done
rm -f "$S/dd-out.bin"
echo -n "dd oflag=direct (O_DIRECT, 2 GiB, bs=8M): "
timeout 300 dd if="$S/rand-2g.bin" of="$S/dd-out.bin" bs=8M oflag=direct 2>&1 | tail -1
rm -f "$S/dd-out.bin"; sync

echo "== loopback TCP (iperf3, 127.0.0.1:$IPERF_PORT, 8 s each)"
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >/dev/null 2>&1 &
IPID=$!
sleep 1
echo -n "iperf3 1 stream:  "; timeout 30 iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 8 -f g | grep -E 'receiver' | awk '{print $7, $8}'
echo -n "iperf3 4 streams: "; timeout 30 iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 8 -P 4 -f g | grep -E 'SUM.*receiver' | awk '{print $6, $7}'
echo -n "iperf3 1 stream, 16 KiB writes: "; timeout 30 iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 8 -l 16K -f g | grep -E 'receiver' | awk '{print $7, $8}'
kill "$IPID" 2>/dev/null; wait "$IPID" 2>/dev/null

echo "== loopback HTTP: curl GET of the 2 GiB file from python3 http.server (127.0.0.1:$HTTP_PORT)"
( cd "$S" && exec python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 ) >/dev/null 2>&1 &
HPID=$!
sleep 1
for i in 1 2; do
  timeout 120 curl -s -o /dev/null -w 'curl: %{speed_download} B/s, %{time_total} s\n' "http://127.0.0.1:$HTTP_PORT/rand-2g.bin"
done
kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null

echo "== load after: $(cat /proc/loadavg)"
