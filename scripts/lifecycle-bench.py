#!/usr/bin/env python3
"""Lifecycle evaluation of one repository with N images (default 100,000).

    python3 scripts/lifecycle-bench.py [--images N] [--rounds 3] [--bin target/release/berth]

It starts Berth on a fresh data directory (SQLite), creates a repository, and writes N
image rows (2 of 3 tagged `release-<n>`, push times spread over 400 days) straight into
the metadata database. Writing them through PutImage would take many minutes and
measure uploads, not evaluation; the rows have exactly the columns Berth's own push
writes. Then it puts a three-rule lifecycle policy and times StartLifecyclePolicyPreview
(boto3, end to end: loading the images and tags from SQLite, evaluating, storing the
preview), which runs exactly the evaluation the lifecycle job runs. Finally it times
`berth admin lifecycle run` as of a year later (evaluation plus the deletions).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

POLICY = {
    "rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["release-*"], "countType": "imageCountMoreThan", "countNumber": 500}, "action": {"type": "expire"}},
        {"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10000}, "action": {"type": "expire"}},
    ]
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default="target/release/berth")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="berth-lifecycle-bench-")
    proc = subprocess.Popen(
        [args.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--lifecycle-interval", "0", "--gc-interval", "0"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(data, "stderr.log"), "w"), text=True,
        env={**os.environ, "BERTH_LOG": "info,berth::service::lifecycle=debug"},
    )
    try:
        line = proc.stdout.readline().strip()
        url = line.rsplit(" ", 1)[1]
        fields = dict(l.split(" = ") for l in open(os.path.join(data, "credentials")).read().splitlines() if " = " in l)
        ecr = boto3.client(
            "ecr", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=fields["aws_access_key_id"], aws_secret_access_key=fields["aws_secret_access_key"],
            config=Config(retries={"max_attempts": 1}, read_timeout=600),
        )
        ecr.create_repository(repositoryName="big")
        fill(os.path.join(data, "meta.db"), args.images)
        ecr.put_lifecycle_policy(repositoryName="big", lifecyclePolicyText=json.dumps(POLICY))

        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            ecr.start_lifecycle_policy_preview(repositoryName="big")
            times.append(time.perf_counter() - t0)
        summary = ecr.get_lifecycle_policy_preview(repositoryName="big", maxResults=1)["summary"]
        print(f"images: {args.images}")
        print(f"preview (load + evaluate + store) seconds: {', '.join(f'{t:.3f}' for t in times)}; median {statistics.median(times):.3f}")
        print(f"images the policy expires: {summary['expiringImageTotalCount']}")
        for line in open(os.path.join(data, "stderr.log")):
            if '"lifecycle preview"' in line:
                e = json.loads(line)
                print(f"  server: load {e['load_ms']} ms, evaluate {e['evaluate_ms']} ms, store {e['store_ms']} ms")

        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 365 * 86400))
        t0 = time.perf_counter()
        out = subprocess.run([args.bin, "admin", "lifecycle", "run", "--at", later, "--data-dir", data],
                             capture_output=True, text=True, check=True).stdout.strip()
        print(f"admin lifecycle run (evaluate + delete) seconds: {time.perf_counter() - t0:.3f}: {out}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fill(db_path: str, n: int) -> None:
    now = int(time.time() * 1000)
    db = sqlite3.connect(db_path, timeout=30)
    (repo_id,) = db.execute("SELECT id FROM repositories WHERE name = 'big'").fetchone()
    manifests, tags = [], []
    for i in range(n):
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "n": i}).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        pushed = now - (i % 400) * 86_400_000 - i
        manifests.append((repo_id, digest, "application/vnd.oci.image.manifest.v1+json", len(body), body, pushed))
        if i % 3:
            tags.append((repo_id, f"release-{i}", digest, pushed))
    with db:
        db.executemany(
            "INSERT INTO manifests (repository_id, digest, media_type, size, body, pushed_at) VALUES (?, ?, ?, ?, ?, ?)",
            manifests,
        )
        db.executemany("INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)", tags)
    db.close()


if __name__ == "__main__":
    sys.exit(main())
