#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""invalidation-delay.py - how long a change made through one node takes to reach
another node's caches.

Starts two `berth serve` nodes on one PostgreSQL database (a fresh one, created through
--pg, an admin URL, and dropped at the end), sharing a master key. A user with the ECR
power-user policy is allowed to DescribeRepositories through node B (so B caches its key
and policies); then, --count times, a Deny is attached through node A and B is asked
until it refuses, and the Deny is removed through A and B asked until it allows again.
The delay is from A's answer to B's first changed answer (B is asked in a tight loop,
each request taking well under a millisecond on loopback).

    invalidation-delay.py --pg postgres://postgres@127.0.0.1:5432/postgres [--count 200]

Prints p50/p90/p99/max in milliseconds, and one JSON object on stdout.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

DENY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "ecr:DescribeRepositories", "Resource": "*"}]})


def start(binary, data, pg, key):
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--metadata", pg,
                          "--master-key-file", key], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode().strip()
    return p, line.rsplit(" ", 1)[-1]


def creds(data):
    fields = dict(l.split(" = ", 1) for l in open(os.path.join(data, "credentials")).read().splitlines() if " = " in l)
    return fields["aws_access_key_id"], fields["aws_secret_access_key"]


def denied(ecr):
    try:
        ecr.describe_repositories(repositoryNames=["probe"])
        return False
    except ClientError as e:
        if e.response["Error"]["Code"] != "AccessDeniedException":
            raise
        return True


def until(ecr, want_denied, deadline_s=10.0):
    start = time.perf_counter()
    while denied(ecr) != want_denied:
        if time.perf_counter() - start > deadline_s:
            raise SystemExit("the change did not arrive within 10 s")
    return (time.perf_counter() - start) * 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", required=True, help="PostgreSQL admin URL (a database is created and dropped)")
    ap.add_argument("--berth", default=os.environ.get("BERTH_BIN", "target/release/berth"))
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    db = "berth_delay_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", args.pg, "-q", "-c", f"CREATE DATABASE {db}"], check=True)
    url = args.pg.rsplit("/", 1)[0] + "/" + db
    work = tempfile.mkdtemp(prefix="berth-delay-")
    key = os.path.join(work, "master.key")
    procs = []
    try:
        a, a_url = start(args.berth, os.path.join(work, "a"), url, key)
        procs.append(a)
        b, b_url = start(args.berth, os.path.join(work, "b"), url, key)
        procs.append(b)
        k, s = creds(os.path.join(work, "a"))
        cfg = Config(retries={"max_attempts": 1})
        iam = boto3.client("iam", endpoint_url=a_url, region_name="us-east-1", aws_access_key_id=k,
                           aws_secret_access_key=s)
        boto3.client("ecr", endpoint_url=a_url, region_name="us-east-1", aws_access_key_id=k,
                     aws_secret_access_key=s).create_repository(repositoryName="probe")
        iam.create_user(UserName="probe")
        iam.attach_user_policy(UserName="probe",
                               PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")
        ak = iam.create_access_key(UserName="probe")["AccessKey"]
        ecr_b = boto3.client("ecr", endpoint_url=b_url, region_name="us-east-1", config=cfg,
                             aws_access_key_id=ak["AccessKeyId"], aws_secret_access_key=ak["SecretAccessKey"])
        assert not denied(ecr_b)
        delays = []
        for _ in range(args.count):
            iam.put_user_policy(UserName="probe", PolicyName="deny", PolicyDocument=DENY)
            delays.append(until(ecr_b, True))
            iam.delete_user_policy(UserName="probe", PolicyName="deny")
            delays.append(until(ecr_b, False))
        out = {"changes": len(delays), "p50_ms": pct(delays, 50), "p90_ms": pct(delays, 90),
               "p99_ms": pct(delays, 99), "max_ms": max(delays), "mean_ms": statistics.mean(delays)}
        print(f"{len(delays)} changes: p50 {out['p50_ms']:.1f} ms, p90 {out['p90_ms']:.1f} ms, "
              f"p99 {out['p99_ms']:.1f} ms, max {out['max_ms']:.1f} ms", flush=True)
        print(json.dumps(out))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["psql", args.pg, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    main()
