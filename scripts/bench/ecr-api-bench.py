#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""ecr-api-bench.py - request rate of the ECR JSON control plane (CreateRepository,
DescribeRepositories) of any ECR-compatible endpoint, e.g. moto:

    python3 -m moto.server -H 127.0.0.1 -p 5001 &
    ecr-api-bench.py --endpoint http://127.0.0.1:5001 [--pid PID] [--concurrency 1]

Client: boto3 (endpoint_url, credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or dummy ones, region us-east-1), one client per worker
thread. Each phase is bounded by --seconds and --max-calls. Optional --wrk also replays one
SigV4-signed DescribeRepositories request with wrk against the seeded registry (server
capacity without boto3's client-side cost; the signature stays valid for the run's seconds).

Order: seed --seed-repos repos (untimed); DescribeRepositories (page of the seeded repos);
[wrk replay]; CreateRepository for --seconds; DescribeRepositories by name and a 100-repo
page, now with every repository created so far (moto's cost grows with that count).

Prints human-readable lines to stderr and one JSON object to stdout (and --json-out).
Only loopback endpoints are accepted.
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import urlsplit

ACCESS_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
SECRET_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

import boto3
import botocore.config


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        rest = s[s.rfind(")") + 2:].split()
        return (int(rest[11]) + int(rest[12])) / CLK
    except (OSError, ValueError, IndexError):
        return None


def proc_hwm_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def make_client(endpoint, region):
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                 max_pool_connections=4, connect_timeout=5, read_timeout=30)
    return boto3.session.Session().client(
        "ecr", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, config=cfg)


def run_phase(name, args, call):
    """call(client, worker_index, seq) performs one API call. Returns a result dict."""
    lat, errs = [], []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    counter = [0]

    def worker(wi):
        c = make_client(args.endpoint, args.region)
        while time.monotonic() < deadline:
            with lock:
                seq = counter[0]
                if seq >= args.max_calls:
                    return
                counter[0] += 1
            t0 = time.perf_counter()
            try:
                call(c, wi, seq)
            except Exception as e:
                with lock:
                    errs.append("%s: %s" % (type(e).__name__, e))
                if len(errs) > 50:
                    return
                continue
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                lat.append(dt)

    # warm-up (client creation, connection) outside the timed window
    warm = make_client(args.endpoint, args.region)
    warm.describe_repositories(maxResults=1)
    c0 = proc_cpu_s(args.pid) if args.pid else None
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.seconds
    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.concurrency)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=args.seconds + 60)
    wall = time.perf_counter() - t0
    res = {"calls": len(lat), "errors": len(errs), "wall_s": round(wall, 2),
           "rps": round(len(lat) / wall, 1),
           "p50_ms": round(pct(lat, 0.5), 2) if lat else None,
           "p99_ms": round(pct(lat, 0.99), 2) if lat else None,
           "concurrency": args.concurrency}
    if errs:
        res["first_error"] = errs[0][:300]
    if c0 is not None:
        c1 = proc_cpu_s(args.pid)
        res["server_cpu_s"] = round(c1 - c0, 2)
        res["server_cpu_ms_per_call"] = round((c1 - c0) * 1000 / max(1, len(lat)), 3)
    log("  %-40s %8.1f req/s  p50 %.2f ms  p99 %.2f ms  (%d calls, %d errors, %d workers)%s" % (
        name, res["rps"], res["p50_ms"] or -1, res["p99_ms"] or -1, res["calls"], res["errors"],
        args.concurrency, ", server %.3f ms CPU/call" % res["server_cpu_ms_per_call"]
        if "server_cpu_ms_per_call" in res else ""))
    return res


def wrk_describe(args):
    """Replay one signed DescribeRepositories POST with wrk."""
    wrk = shutil.which("wrk")
    if not wrk:
        log("  wrk not found: skipping wrk phase")
        return None
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = json.dumps({"maxResults": 100})
    url = args.endpoint.rstrip("/") + "/"
    req = AWSRequest(method="POST", url=url, data=body, headers={
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY),
              "ecr", args.region).add_auth(req)
    lines = ['wrk.method = "POST"', "wrk.body = %s" % json.dumps(body)]
    for k, v in req.headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        lines.append("wrk.headers[%s] = %s" % (json.dumps(k), json.dumps(v)))
    fd, script = tempfile.mkstemp(suffix=".lua", prefix="ecr-wrk-", dir=args.tmp_dir)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    cmd = [wrk, "-t2", "-c%d" % args.wrk_connections, "-d%ds" % int(args.seconds), "--latency",
           "--timeout", "10s", "-s", script, url]
    try:
        c0 = proc_cpu_s(args.pid) if args.pid else None
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60)
    finally:
        os.unlink(script)
    out = p.stdout
    res = {"cmd": " ".join(cmd)}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % q, out, re.M)
        res["p%s_ms" % q] = round(float(m.group(1)) * unit[m.group(2)], 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    if c0 is not None:
        res["server_cpu_s"] = round(proc_cpu_s(args.pid) - c0, 2)
    log("  %-40s %8.1f req/s  p50 %s ms  p99 %s ms  non-2xx %d" % (
        "DescribeRepositories (wrk replay)", res["rps"] or -1, res["p50_ms"], res["p99_ms"],
        res["non_2xx"]))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:5001")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--pid", type=int, help="server process id, for CPU seconds and VmHWM")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--max-calls", type=int, default=20000, help="cap on calls per phase")
    ap.add_argument("--concurrency", type=int, default=1, help="worker threads, one boto3 client each")
    ap.add_argument("--prefix", default="ecrbench")
    ap.add_argument("--seed-repos", type=int, default=20,
                    help="repositories created (untimed) before the first DescribeRepositories phase")
    ap.add_argument("--wrk", action="store_true", help="also replay a signed DescribeRepositories with wrk")
    ap.add_argument("--wrk-connections", type=int, default=16)
    ap.add_argument("--tmp-dir", default=tempfile.gettempdir())
    ap.add_argument("--json-out")
    args = ap.parse_args()
    host = urlsplit(args.endpoint).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        ap.error("endpoint must be a loopback address")

    run = uuid.uuid4().hex[:8]
    out = {"tool": "ecr-api-bench.py", "endpoint": args.endpoint, "run": run,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": args.seconds,
           "concurrency": args.concurrency, "boto3": boto3.__version__,
           "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    log("ecr-api-bench %s against %s (%d worker(s), %.0f s per phase)" % (
        run, args.endpoint, args.concurrency, args.seconds))

    created = []
    clock = threading.Lock()

    # small registry first: --seed-repos repositories (created untimed), then a page of them
    seed = make_client(args.endpoint, args.region)
    for i in range(args.seed_repos):
        seed.create_repository(repositoryName="%s/%s/seed-%03d" % (args.prefix, run, i))

    def describe_seed(c, wi, seq):
        r = c.describe_repositories(maxResults=100)
        if len(r["repositories"]) < min(args.seed_repos, 100):
            raise RuntimeError("DescribeRepositories returned %d repositories" % len(r["repositories"]))

    out["seed_repos"] = args.seed_repos
    out["describe_repositories_seeded"] = run_phase(
        "DescribeRepositories(%d repos)" % args.seed_repos, args, describe_seed)
    if args.wrk:
        out["describe_repositories_seeded_wrk"] = wrk_describe(args)

    def create(c, wi, seq):
        name = "%s/%s/repo-%05d" % (args.prefix, run, seq)
        r = c.create_repository(repositoryName=name)
        if r["repository"]["repositoryName"] != name:
            raise RuntimeError("CreateRepository returned %r" % r["repository"]["repositoryName"])
        with clock:
            created.append(name)

    out["create_repository"] = run_phase("CreateRepository", args, create)
    if not created:
        raise SystemExit("no repository created: %s" % out["create_repository"].get("first_error"))
    n_created = len(created)

    def describe_one(c, wi, seq):
        name = created[seq % n_created]
        r = c.describe_repositories(repositoryNames=[name])
        if r["repositories"][0]["repositoryName"] != name:
            raise RuntimeError("DescribeRepositories returned the wrong repository")

    def describe_page(c, wi, seq):
        r = c.describe_repositories(maxResults=100)
        if not r["repositories"]:
            raise RuntimeError("DescribeRepositories returned no repositories")

    total = n_created + args.seed_repos
    out["describe_repositories_by_name"] = run_phase(
        "DescribeRepositories(name; %d repos)" % total, args, describe_one)
    out["describe_repositories_page100"] = run_phase(
        "DescribeRepositories(max 100; %d repos)" % total, args, describe_page)
    out["repositories_existing"] = n_created + args.seed_repos
    if args.pid:
        out["server_vmhwm_mib"] = proc_hwm_mib(args.pid)
    out["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    txt = json.dumps(out, indent=1)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(txt + "\n")
    print(txt)
    errors = sum(out[k].get("errors", 0) for k in out if isinstance(out[k], dict) and "errors" in out[k])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
