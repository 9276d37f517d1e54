#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""console-bench.py - server time of the console's pages with many repositories.

Starts a Berth (BERTH_BIN, default target/release/berth) on a fresh data directory,
creates --repositories repositories through the ECR API (boto3, --threads at once),
signs in to the console with the root's key, requests each page --requests times, and
reports the server's own time per request (the access log's duration_ms: from the
request's arrival until its body was sent), p50 / p99 / max.

    python3 scripts/bench/console-bench.py --repositories 10000 --requests 50
"""

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import boto3
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repositories", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    binary = os.environ.get("BERTH_BIN", os.path.join(ROOT, "target/release/berth"))
    data = tempfile.mkdtemp(prefix="console-bench-")
    log = open(os.path.join(data, "stderr.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                             "--lifecycle-interval", "0", "--gc-interval", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = proc.stdout.readline().strip().split()[-1]
        creds = dict(l.split(" = ", 1) for l in open(os.path.join(data, "credentials")).read().splitlines() if " = " in l)
        key, secret = creds["aws_access_key_id"], creds["aws_secret_access_key"]
        ecr = boto3.client("ecr", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id=key, aws_secret_access_key=secret)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda i: ecr.create_repository(repositoryName=f"team-{i % 50:02d}/app-{i:05d}"),
                          range(args.repositories)))
        print(f"created {args.repositories} repositories in {time.monotonic() - t0:.1f} s")
        s = requests.Session()
        token = re.search(r'name="csrf" value="([^"]+)"', s.get(url + "/console/signin").text).group(1)
        r = s.post(url + "/console/signin", allow_redirects=False, data={
            "method": "keys", "access_key_id": key, "secret_access_key": secret, "csrf": token})
        assert r.status_code == 303, r.status_code
        pages = ["/console/repositories", "/console/repositories/team-07/app-00007",
                 "/console/repositories/team-07/app-00007/-/lifecycle", "/console/registry",
                 "/console/events", "/console/usage"]
        for p in pages:
            for _ in range(args.requests):
                assert s.get(url + p).status_code == 200, p
        log.flush()
        times = {p: [] for p in pages}
        for line in open(os.path.join(data, "stderr.log")):
            if '"target":"access"' not in line:
                continue
            rec = json.loads(line)
            if rec.get("method") == "GET" and rec.get("path") in times:
                times[rec["path"]].append(rec["duration_ms"])
        out = {}
        for p, ts in times.items():
            ts.sort()
            out[p] = {"n": len(ts), "p50_ms": round(statistics.median(ts), 2),
                      "p99_ms": round(ts[int(len(ts) * 0.99) - 1], 2), "max_ms": round(ts[-1], 2)}
            print(f"{p}: n={len(ts)} p50 {out[p]['p50_ms']} ms, p99 {out[p]['p99_ms']} ms, max {out[p]['max_ms']} ms")
        print(json.dumps(out))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
