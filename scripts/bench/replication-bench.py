#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""replication-bench.py - replication lag and backfill speed inside one deployment.

    replication-bench.py --berth-bin target/release/berth [--rate 20 --seconds 30]
        [--backfill 10000] [--metadata postgres://...] [--blobs s3://...]

One `berth serve` on loopback (embedded SQLite and the data directory unless
--metadata/--blobs say otherwise).

Lag: images are pushed over HTTP at --rate a second for --seconds (each a new manifest
over a shared config and layer, so the push is the manifest PUT a CI pipeline ends
with), first with no replication configuration (the reference: what a push costs
without replication), then with a configuration that sends every repository to two
other regions and a second account. For every push, a poller asks each destination for
the tag (HEAD, every 5 ms) and records when it answers 200: push-to-pullable lag.

Signing: the same pushes into a repository a signing rule covers (a profile made
through AWS Signer's API): push latency beside the no-replication phase, and the time
from one push until its signature is stored.

Backfill: --backfill images (10 repositories) are pushed with no configuration for
their prefix; then a rule sends them to a new region and StartReplicationBackfill runs;
the time is from the start to COMPLETE (DescribeReplicationBackfillResults polled every
50 ms), with the run's own startedAt/endedAt beside it.

Prints one line per phase to stderr and a JSON summary to stdout.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCOUNT = "000000000000"
OTHER = "111122223333"
REGION = "us-east-1"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
TARGET = "AmazonEC2ContainerRegistry_V20150921."


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Node:
    def __init__(self, url: str, port: int, key: str, secret: str):
        self.url, self.port, self.key, self.secret = url, port, key, secret

    def call(self, op: str, body: dict, region: str = REGION, creds=None) -> dict:
        key, secret = creds or (self.key, self.secret)
        data = json.dumps(body).encode()
        req = AWSRequest(method="POST", url=self.url + "/", data=data, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op})
        SigV4Auth(Credentials(key, secret), "ecr", region).add_auth(req)
        r = requests.post(self.url + "/", data=data, headers=dict(req.headers.items()), timeout=60)
        if r.status_code != 200:
            sys.exit(f"{op}: {r.status_code} {r.text}")
        return r.json()

    def auth(self, region: str, creds=None) -> str:
        key, secret = creds or (self.key, self.secret)
        ecr = boto3.client("ecr", endpoint_url=self.url, region_name=region,
                           aws_access_key_id=key, aws_secret_access_key=secret)
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        return "Basic " + token

    def host(self, account: str, region: str) -> str:
        return f"{account}.dkr.ecr.{region}.localhost:{self.port}"


class Client:
    """A keep-alive connection to one registry (account, region)."""

    def __init__(self, node: Node, account: str, region: str, auth: str):
        self.node, self.host, self.auth = node, node.host(account, region), auth
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)

    def request(self, method: str, path: str, body: bytes = b"", headers=None) -> int:
        h = {"Host": self.host, "Authorization": self.auth, **(headers or {})}
        self.conn.request(method, path, body=body or None, headers=h)
        r = self.conn.getresponse()
        r.read()
        return r.status

    def blob(self, repo: str, data: bytes) -> None:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        h = {"Host": self.host, "Authorization": self.auth, "Content-Type": "application/octet-stream"}
        self.conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data, headers=h)
        r = self.conn.getresponse()
        r.read()
        assert r.status == 201, r.status


def manifest(cfg: bytes, layer: bytes, n: str) -> bytes:
    d = lambda mt, b: {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
    m = {"schemaVersion": 2, "mediaType": MEDIA,
         "config": d("application/vnd.oci.image.config.v1+json", cfg),
         "layers": [d("application/vnd.oci.image.layer.v1.tar", layer)],
         "annotations": {"n": n}}
    return json.dumps(m).encode()


def lag_phase(node: Node, push: Client, dests: list, repo: str, rate: float, seconds: float,
              cfg: bytes, layer: bytes, label: str) -> dict:
    """Push at `rate` for `seconds`; the push latencies and (with dests) each push's lag
    to every destination."""
    pending = {}  # (tag, dest index) -> pushed at
    lags, lock, done = [], threading.Lock(), threading.Event()

    def poll():
        clients = [Client(node, a, r, auth) for (a, r, auth) in dests]
        while not done.is_set() or pending:
            with lock:
                items = list(pending.items())
            if not items:
                time.sleep(0.005)
                continue
            for (tag, i), t0 in items:
                if clients[i].request("HEAD", f"/v2/{repo}/manifests/{tag}",
                                      headers={"Accept": MEDIA}) == 200:
                    with lock:
                        lags.append(time.monotonic() - t0)
                        del pending[(tag, i)]
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    if dests:
        poller.start()
    latencies = []
    n = int(rate * seconds)
    start = time.monotonic()
    for k in range(n):
        time.sleep(max(0.0, start + k / rate - time.monotonic()))
        tag = f"{label}-{k}"
        body = manifest(cfg, layer, tag)
        t0 = time.monotonic()
        status = push.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": MEDIA})
        t1 = time.monotonic()
        assert status == 201, status
        latencies.append(t1 - t0)
        with lock:
            for i in range(len(dests)):
                pending[(tag, i)] = t1
    done.set()
    if dests:
        poller.join(timeout=120)
    out = {"pushes": n, "push_p50_ms": round(statistics.median(latencies) * 1000, 2),
           "push_p99_ms": round(pct(latencies, 99) * 1000, 2)}
    if dests:
        out.update({"lag_p50_ms": round(statistics.median(lags) * 1000, 1),
                    "lag_p99_ms": round(pct(lags, 99) * 1000, 1),
                    "lag_max_ms": round(max(lags) * 1000, 1), "replications": len(lags)})
    log(f"{label}: {out}")
    return out


def signing_phase(node: Node, push: Client, rate: float, seconds: float, cfg: bytes, layer: bytes) -> dict:
    """Pushes to a repository a signing rule covers (the same rate, and the same kind of
    push as the lag phases): the push latency, and each push's time until its signature
    is stored (DescribeImageSigningStatus COMPLETE, asked every 5 ms)."""
    signer = boto3.client("signer", endpoint_url=node.url, region_name=REGION,
                          aws_access_key_id=node.key, aws_secret_access_key=node.secret)
    arn = signer.put_signing_profile(profileName="bench", platformId="Notation-OCI-SHA384-ECDSA")["arn"]
    node.call("PutSigningConfiguration", {"signingConfiguration": {"rules": [{
        "signingProfileArn": arn, "repositoryFilters": [{"filter": "signed/*", "filterType": "WILDCARD_MATCH"}]}]}})
    node.call("CreateRepository", {"repositoryName": "signed/app"})
    push.blob("signed/app", cfg)
    push.blob("signed/app", layer)
    out = lag_phase(node, push, [], "signed/app", rate, seconds, cfg, layer, "signed")
    waits = []
    for k in range(0, int(rate * seconds), max(1, int(rate))):
        tag = f"signed-{k}"
        while True:
            s = node.call("DescribeImageSigningStatus", {"repositoryName": "signed/app", "imageId": {"imageTag": tag}})
            if s["signingStatuses"] and s["signingStatuses"][0]["status"] == "COMPLETE":
                break
            time.sleep(0.005)
        waits.append(k)
    t0 = time.monotonic()
    tag = "signed-timed"
    body = manifest(cfg, layer, tag)
    assert push.request("PUT", f"/v2/signed/app/manifests/{tag}", body, {"Content-Type": MEDIA}) == 201
    while node.call("DescribeImageSigningStatus", {"repositoryName": "signed/app",
                                                   "imageId": {"imageTag": tag}})["signingStatuses"][0]["status"] != "COMPLETE":
        time.sleep(0.002)
    out["one_push_signed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    out["checked_signed"] = len(waits)
    log(f"signing: {out}")
    return out


def backfill_phase(node: Node, count: int, cfg: bytes, layer: bytes, auth: str) -> dict:
    repos = [f"fleet/app{i}" for i in range(10)]
    per = count // len(repos)

    def fill(repo):
        c = Client(node, ACCOUNT, REGION, auth)
        c.blob(repo, cfg)
        c.blob(repo, layer)
        for k in range(per):
            assert c.request("PUT", f"/v2/{repo}/manifests/v{k}", manifest(cfg, layer, f"{repo}-{k}"),
                             {"Content-Type": MEDIA}) == 201

    t = time.monotonic()
    for r in repos:
        node.call("CreateRepository", {"repositoryName": r})
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(fill, repos))
    log(f"backfill: {per * len(repos)} images pushed in {time.monotonic() - t:.1f} s")
    return run_backfill(node, per * len(repos))


def run_backfill(node: Node, images: int) -> dict:
    config = node.call("DescribeRegistry", {})["replicationConfiguration"]
    config["rules"].append({"destinations": [{"region": "ap-south-1", "registryId": ACCOUNT}],
                            "repositoryFilters": [{"filter": "fleet/", "filterType": "PREFIX_MATCH"}]})
    node.call("PutReplicationConfiguration", {"replicationConfiguration": config})
    t0 = time.monotonic()
    run = node.call("StartReplicationBackfill", {"destination": {"region": "ap-south-1", "registryId": ACCOUNT}})
    rid = run["replicationBackfillId"]
    while True:
        s = node.call("DescribeReplicationBackfillResults", {"replicationBackfillId": rid, "maxResults": 1})
        if s["status"] not in ("PREPARING", "IN_PROGRESS"):
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    out = {"images": images, "status": s["status"], "seconds": round(wall, 2),
           "run_seconds": round(s["endedAt"] - s["startedAt"], 2),
           "completed": s["progress"]["completedReplicationCount"],
           "per_second": round(s["progress"]["completedReplicationCount"] / wall)}
    log(f"backfill: {out}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--berth-bin", required=True)
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--backfill", type=int, default=10000)
    p.add_argument("--metadata")
    p.add_argument("--blobs")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="replication-bench-")
    proc = None
    try:
        port = free_port()
        data = os.path.join(work, "berth")
        cmd = [args.berth_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]
        if args.metadata:
            cmd += ["--metadata", args.metadata]
        if args.blobs:
            cmd += ["--blobs", args.blobs]
        blog = open(os.path.join(work, "berth.log"), "w")
        proc = subprocess.Popen(cmd, stdout=blog, stderr=blog)
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 30
        while not os.path.exists(os.path.join(data, "credentials")) or \
                subprocess.run(["curl", "-s", "-o", "/dev/null", url + "/v2/"]).returncode != 0:
            assert time.monotonic() < end, "berth did not start"
            time.sleep(0.1)
        text = open(os.path.join(data, "credentials")).read()
        creds = dict((k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in text.splitlines() if "=" in l))
        node = Node(url, port, creds["aws_access_key_id"], creds["aws_secret_access_key"])
        admin = [args.berth_bin, "admin", "create-account", OTHER, "--data-dir", data]
        if args.metadata:
            admin += ["--metadata", args.metadata]
        out = subprocess.run(admin, capture_output=True, text=True, check=True).stdout
        other = dict((k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in out.splitlines() if "=" in l))
        other_creds = (other["aws_access_key_id"], other["aws_secret_access_key"])
        node.call("PutRegistryPolicy", {"policyText": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["ecr:ReplicateImage", "ecr:CreateRepository"],
            "Resource": f"arn:aws:ecr:{REGION}:{OTHER}:repository/*"}]})}, creds=other_creds)

        auth = node.auth(REGION)
        cfg, layer = os.urandom(200), os.urandom(4096)
        node.call("CreateRepository", {"repositoryName": "ci/app"})
        push = Client(node, ACCOUNT, REGION, auth)
        push.blob("ci/app", cfg)
        push.blob("ci/app", layer)
        summary = {"rate": args.rate, "seconds": args.seconds}
        summary["no_replication"] = lag_phase(node, push, [], "ci/app", args.rate, args.seconds, cfg, layer, "off")
        dests = [(ACCOUNT, "eu-west-1", node.auth("eu-west-1")), (ACCOUNT, "us-west-2", node.auth("us-west-2")),
                 (OTHER, REGION, node.auth(REGION, other_creds))]
        node.call("PutReplicationConfiguration", {"replicationConfiguration": {"rules": [{
            "destinations": [{"region": r, "registryId": a} for (a, r, _) in dests],
            "repositoryFilters": [{"filter": "ci/", "filterType": "PREFIX_MATCH"}]}]}})
        summary["replicating"] = lag_phase(node, push, dests, "ci/app", args.rate, args.seconds, cfg, layer, "on")
        summary["signing"] = signing_phase(node, push, args.rate, args.seconds, cfg, layer)
        if args.backfill:
            summary["backfill"] = backfill_phase(node, args.backfill, cfg, layer, auth)
        print(json.dumps(summary, indent=2))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
