#!/usr/bin/env python3
"""Push throughput while garbage collection removes N unreferenced blobs (default 100,000).

    python3 scripts/gc-bench.py [--blobs N] [--seconds 15] [--threads 8] [--bin target/release/berth]

It starts Berth (SQLite) on a fresh data directory and plants N garbage blobs: real files
under blobs/ named by their SHA-256, rows in `blobs` dated a day ago, and, for half of
them, an unreferenced link in a repository (so both link and blob collection run). Writing
them through uploads would take far longer than the measurement; the rows and files are
exactly what an upload leaves. Then:

1. baseline: THREADS pushers push small images (config + 2 layers + manifest, docker's
   HEAD-then-upload order) for SECONDS; images/s is counted;
2. the same pushers run while `berth admin gc --grace 60` collects the planted garbage;
   images/s is counted over the collection's duration.

It prints both rates, the degradation, and what GC freed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import requests

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blobs", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--bin", default="target/release/berth")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="berth-gc-bench-")
    proc = subprocess.Popen(
        [args.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--gc-interval", "0",
         "--lifecycle-interval", "0", "--create-on-push"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        password = subprocess.run([args.bin, "admin", "login-password", "--data-dir", data],
                                  capture_output=True, text=True, check=True).stdout.strip()
        auth = ("AWS", password)
        # A repository for the pushes (create-on-push) and one holding planted links.
        push_one(url, auth, "garbage", 0)
        t0 = time.time()
        plant(data, args.blobs)
        print(f"planted {args.blobs} garbage blobs in {time.time() - t0:.1f} s")

        base = measure(url, auth, args.threads, lambda: time.sleep(args.seconds))
        print(f"baseline: {base['images']} images in {base['seconds']:.1f} s = {base['rate']:.1f} images/s")

        gc_out: dict = {}

        def run_gc():
            t = time.time()
            gc_out["text"] = subprocess.run([args.bin, "admin", "gc", "--grace", "60", "--data-dir", data],
                                            capture_output=True, text=True, check=True).stdout.strip()
            gc_out["seconds"] = time.time() - t

        during = measure(url, auth, args.threads, run_gc)
        print(f"during GC: {during['images']} images in {during['seconds']:.1f} s = {during['rate']:.1f} images/s")
        print(f"GC took {gc_out['seconds']:.1f} s: {gc_out['text']}")
        print(f"push throughput degraded by {100 * (1 - during['rate'] / base['rate']):.1f}%")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def plant(data: str, n: int) -> None:
    day_ago = int(time.time() * 1000) - 86_400_000
    db = sqlite3.connect(os.path.join(data, "meta.db"), timeout=60)
    (repo_id,) = db.execute("SELECT id FROM repositories WHERE name = 'garbage'").fetchone()
    blobs, links = [], []
    for i in range(n):
        content = os.urandom(64)
        hexd = hashlib.sha256(content).hexdigest()
        d = os.path.join(data, "blobs", "v1", "sha256", hexd[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, hexd), "wb") as f:
            f.write(content)
        blobs.append(("sha256:" + hexd, len(content), day_ago))
        if i % 2:
            links.append((repo_id, "sha256:" + hexd, day_ago))
    with db:
        db.executemany("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)", blobs)
        db.executemany("INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)", links)
    db.close()


def push_one(url: str, auth, repo: str, n: int, session: requests.Session | None = None) -> None:
    s = session or requests.Session()
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(8).hex()}).encode()
    layers = [os.urandom(2048), os.urandom(4096)]
    for data in [config, *layers]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if s.head(f"{url}/v2/{repo}/blobs/{digest}", auth=auth, timeout=60).status_code == 200:
            continue
        loc = s.post(f"{url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=60).headers["Location"]
        if loc.startswith("/"):
            loc = url + loc
        r = s.put(loc, params={"digest": digest}, data=data, auth=auth, timeout=60)
        assert r.status_code == 201, r.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(l).hexdigest(), "size": len(l)} for l in layers],
    }).encode()
    r = s.put(f"{url}/v2/{repo}/manifests/t{n}", data=manifest, headers={"Content-Type": MANIFEST},
              auth=auth, timeout=60)
    assert r.status_code == 201, r.text


def measure(url: str, auth, threads: int, window) -> dict:
    """Push from `threads` threads while `window()` runs; images per second over it."""
    stop = threading.Event()
    counts = [0] * threads
    errors: list[str] = []

    def worker(i: int):
        s = requests.Session()
        n = 0
        while not stop.is_set():
            try:
                push_one(url, auth, f"bench-{i}", n, s)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return
            n += 1
            counts[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    time.sleep(1)  # warm-up: sessions connected, repositories created
    start_counts = sum(counts)
    t0 = time.time()
    window()
    seconds = time.time() - t0
    images = sum(counts) - start_counts
    stop.set()
    for t in ts:
        t.join()
    if errors:
        sys.exit(f"push failed: {errors[:3]}")
    return {"images": images, "seconds": seconds, "rate": images / seconds}


if __name__ == "__main__":
    main()
