#!/usr/bin/env python3
"""Replay one SigV4-signed ECR API request with wrk: the server's capacity for that
operation without boto3's client-side cost (the method of ecr-api-bench.py --wrk).

Usage: scripts/ecr-replay.py ENDPOINT OPERATION JSON_BODY [CONNECTIONS] [SECONDS]
  e.g. eval "$(berth env)"; scripts/ecr-replay.py http://127.0.0.1:5000 GetAuthorizationToken '{}'
Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_DEFAULT_REGION. The signature stays valid for 15 minutes, so keep runs shorter.
Only loopback endpoints are accepted. Needs Debian's wrk.
"""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    endpoint, op, body = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    conns = sys.argv[4] if len(sys.argv) > 4 else "64"
    secs = sys.argv[5] if len(sys.argv) > 5 else "10"
    host = urlsplit(endpoint).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"refusing a non-loopback endpoint: {endpoint}")
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body.encode(),
        headers={
            "X-Amz-Target": f"AmazonEC2ContainerRegistry_V20150921.{op}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(creds, "ecr", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(req)
    lua = "wrk.method = 'POST'\nwrk.body = " + json.dumps(body) + "\n"
    lua += "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in req.headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", "-s", script.name, endpoint + "/"],
            capture_output=True, text=True, timeout=int(secs) + 60,
        ).stdout
    lines = [l.strip() for l in out.splitlines() if "Requests/sec" in l or "99%" in l or "Non-2xx" in l]
    print(op, " | ".join(lines))


if __name__ == "__main__":
    main()
