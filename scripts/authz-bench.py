#!/usr/bin/env python3
"""What authorization costs on the hottest registry request.

Starts Berth (release build) on a fresh data dir, pushes one small image through the ECR
API, creates an IAM user whose only permission is the managed
AmazonEC2ContainerRegistryReadOnly policy, then runs `wrk` on manifest GET by tag with
the account root's token and with the user's token, alternating, and prints requests/s.

    python3 scripts/authz-bench.py [--berth target/release/berth] [--seconds 8] [--rounds 2]

Needs wrk and boto3. Talks to 127.0.0.1 only; stops the server it started, by PID.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import boto3

ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def start(berth: str, data: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [berth, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"berth listening on (http://127\.0\.0\.1:\d+)", line.strip())
        if m:
            return proc, m.group(1)
    raise SystemExit("berth did not start")


def root_keys(data: Path) -> tuple[str, str]:
    text = (data / "credentials").read_text()
    get = lambda k: re.search(rf"{k}\s*=\s*(\S+)", text).group(1)  # noqa: E731
    return get("aws_access_key_id"), get("aws_secret_access_key")


def seed(url: str, key: str, secret: str) -> tuple[str, str]:
    """Push one image; return (root token, ReadOnly user's token)."""
    kw = dict(endpoint_url=url, region_name="us-east-1")
    ecr = boto3.client("ecr", aws_access_key_id=key, aws_secret_access_key=secret, **kw)
    iam = boto3.client("iam", aws_access_key_id=key, aws_secret_access_key=secret, **kw)
    ecr.create_repository(repositoryName="app")

    def upload(blob: bytes) -> str:
        up = ecr.initiate_layer_upload(repositoryName="app")["uploadId"]
        ecr.upload_layer_part(
            repositoryName="app", uploadId=up, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob
        )
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        ecr.complete_layer_upload(repositoryName="app", uploadId=up, layerDigests=[digest])
        return digest

    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = os.urandom(100)
    manifest = {
        "schemaVersion": 2,
        "mediaType": ACCEPT,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": upload(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": upload(layer), "size": len(layer)}],
    }
    ecr.put_image(repositoryName="app", imageManifest=json.dumps(manifest), imageTag="latest")
    root_token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    iam.create_user(UserName="reader")
    iam.attach_user_policy(
        UserName="reader", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
    )
    k = iam.create_access_key(UserName="reader")["AccessKey"]
    user = boto3.client(
        "ecr", aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], **kw
    )
    user_token = user.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return root_token, user_token


def wrk(url: str, token: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "-H", f"Authorization: Basic {token}", "-H", f"Accept: {ACCEPT}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth", default=str(Path(__file__).resolve().parent.parent / "target/release/berth"))
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-authz-") as tmp:
        data = Path(tmp) / "data"
        proc, url = start(args.berth, data)
        try:
            tokens = dict(zip(("root", "user"), seed(url, *root_keys(data))))
            target = f"{url}/v2/app/manifests/latest"
            req = urllib.request.Request(target, headers={"Authorization": f"Basic {tokens['user']}", "Accept": ACCEPT})
            assert urllib.request.urlopen(req).status == 200
            for _ in range(args.rounds):
                for who, token in tokens.items():
                    print(f"{who}: {wrk(target, token, args.seconds):,.0f} requests/s", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
