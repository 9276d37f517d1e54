#!/usr/bin/env python3
# Berth's reference benchmark script (see docs/performance.md).
"""pull-through-bench.py - pulls through Berth's pull-through cache against pulling the
same image directly from the upstream (CNCF Distribution), side by side in one run.

    pull-through-bench.py --berth-bin target/release/berth [--rounds 3]
        [--layers 4 --layer-mib 256] [--stampede 50 --stampede-layer-mib 16]

Everything runs on loopback: Distribution (Debian's docker-registry, filesystem
storage) holds the image; Berth (embedded SQLite, data directory) has a rule whose
upstream is declared to be that Distribution. Each pull is what a client does: the
manifest, then every blob, three at a time (docker's default), with curl, bodies
discarded.

Per round (the order of the two alternates):
  direct  : a pull from Distribution
  first   : the first pull through a fresh cache repository (a new rule prefix per
            round), so Berth fetches from Distribution while it streams and stores
  warm    : the same pull again, once the image is stored: Berth's local speed
Then the stampede: --stampede clients pull one uncached image at once; the upstream's
access log says how many times each blob and manifest left it.

Prints one line per measurement to stderr and a JSON summary (medians; first/direct
ratio) to stdout.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if subprocess.run(["curl", "-s", "-o", "/dev/null", url]).returncode == 0:
            return
        time.sleep(0.1)
    sys.exit(f"{url} did not answer")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def push_blob(port: int, repo: str, path: str, digest: str) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", f"/v2/{repo}/blobs/uploads/")
    r = c.getresponse()
    r.read()
    location = r.getheader("Location")
    sep = "&" if "?" in location else "?"
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        c.request("PUT", f"{location}{sep}digest={digest}", body=f,
                  headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        r = c.getresponse()
        r.read()
    assert r.status == 201, (r.status, repo, digest)


def push_image(port: int, repo: str, layer_files: list, tag: str) -> dict:
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                      "config": {"Labels": {"nonce": os.urandom(8).hex()}}}).encode()
    cfg_path = layer_files[0] + f".{repo.replace('/', '_')}.config"
    with open(cfg_path, "wb") as f:
        f.write(cfg)
    cfg_digest = "sha256:" + hashlib.sha256(cfg).hexdigest()
    push_blob(port, repo, cfg_path, cfg_digest)
    layers = []
    for path in layer_files:
        d = sha256_file(path)
        push_blob(port, repo, path, d)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d,
                       "size": os.path.getsize(path)})
    manifest = {"schemaVersion": 2, "mediaType": ACCEPT,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                           "size": len(cfg)}, "layers": layers}
    body = json.dumps(manifest).encode()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("PUT", f"/v2/{repo}/manifests/{tag}", body=body, headers={"Content-Type": ACCEPT})
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    return manifest


def curl(url: str, auth, out: str = "/dev/null", accept: str = "") -> None:
    argv = ["curl", "-sf", "-o", out, url]
    if auth:
        argv += ["-u", f"{auth[0]}:{auth[1]}"]
    if accept:
        argv += ["-H", f"Accept: {accept}"]
    p = subprocess.run(argv)
    if p.returncode != 0:
        raise RuntimeError(f"curl {url} exited {p.returncode}")


def pull(base: str, repo: str, tag: str, auth, workdir: str) -> float:
    """A client's pull: manifest, then the blobs three at a time. Seconds."""
    t0 = time.monotonic()
    mpath = os.path.join(workdir, f"m-{threading.get_ident()}-{time.monotonic_ns()}.json")
    curl(f"{base}/v2/{repo}/manifests/{tag}", auth, mpath, ACCEPT)
    with open(mpath) as f:
        doc = json.load(f)
    os.unlink(mpath)
    digests = [doc["config"]["digest"]] + [l["digest"] for l in doc["layers"]]
    with ThreadPoolExecutor(max_workers=3) as ex:
        list(ex.map(lambda d: curl(f"{base}/v2/{repo}/blobs/{d}", auth), digests))
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth-bin", default="target/release/berth")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--layer-mib", type=int, default=256)
    ap.add_argument("--stampede", type=int, default=50)
    ap.add_argument("--stampede-layer-mib", type=int, default=16)
    ap.add_argument("--upstream-rate-mb", type=int, default=0,
                    help="serve the upstream through nginx at this many MB/s per connection "
                         "(a remote upstream); 0: straight from Distribution on loopback")
    args = ap.parse_args()
    import boto3  # the ECR API call that creates the rules

    work = tempfile.mkdtemp(prefix="ptc-bench-")
    procs = []
    try:
        # Distribution, access log on (the stampede counts its GETs).
        dport = free_port()
        ddir = os.path.join(work, "distribution")
        os.makedirs(ddir)
        with open(os.path.join(ddir, "config.yml"), "w") as f:
            f.write("version: 0.1\nlog: {level: warn, accesslog: {disabled: false}}\n"
                    f"storage: {{filesystem: {{rootdirectory: {ddir}/data}}}}\n"
                    f"http: {{addr: 127.0.0.1:{dport}}}\n")
        dlog = open(os.path.join(ddir, "log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        procs.append(subprocess.Popen(["docker-registry", "serve", os.path.join(ddir, "config.yml")],
                                      stdout=dlog, stderr=dlog, env=env))
        dist = f"http://127.0.0.1:{dport}"
        wait_http(f"{dist}/v2/")
        if args.upstream_rate_mb:
            nport = free_port()
            ndir = os.path.join(work, "nginx")
            os.makedirs(ndir)
            with open(os.path.join(ndir, "nginx.conf"), "w") as f:
                f.write(f"""daemon off; worker_processes 1; pid {ndir}/nginx.pid; error_log {ndir}/error.log;
events {{}}
http {{
  access_log off; client_body_temp_path {ndir}; proxy_temp_path {ndir};
  server {{
    listen 127.0.0.1:{nport};
    location / {{
      proxy_pass http://127.0.0.1:{dport}; proxy_http_version 1.1; proxy_buffering off;
      proxy_set_header Host $http_host; limit_rate {args.upstream_rate_mb}m;
    }}
  }}
}}
""")
            procs.append(subprocess.Popen(["/usr/sbin/nginx", "-c", os.path.join(ndir, "nginx.conf")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            upstream = f"http://127.0.0.1:{nport}"
            wait_http(f"{upstream}/v2/")
        else:
            upstream = dist

        def layers(n: int, mib: int, tag: str) -> list:
            files = []
            for i in range(n):
                path = os.path.join(work, f"{tag}-layer{i}")
                with open(path, "wb") as f:
                    for _ in range(mib):
                        f.write(os.urandom(1 << 20))
                files.append(path)
            return files

        big = layers(args.layers, args.layer_mib, "big")
        push_image(dport, "bench/image", big, "v1")
        small = layers(args.layers, args.stampede_layer_mib, "small")
        stampede_manifest = push_image(dport, "bench/stampede", small, "v1")
        size_gib = args.layers * args.layer_mib / 1024
        log(f"image: {args.layers} x {args.layer_mib} MiB ({size_gib:.2f} GiB) in Distribution, pulled from {upstream}"
            + (f" (nginx, {args.upstream_rate_mb} MB/s per connection)" if args.upstream_rate_mb else ""))

        # Berth, the upstream declared as quay.io.
        bport = free_port()
        bdir = os.path.join(work, "berth")
        cfg = os.path.join(work, "berth.toml")
        with open(cfg, "w") as f:
            f.write(f'[pull_through_cache]\n[[pull_through_cache.upstreams]]\nurl = "quay.io"\nendpoint = "{upstream}"\n')
        blog = open(os.path.join(work, "berth.log"), "w")
        procs.append(subprocess.Popen([args.berth_bin, "serve", "--listen", f"127.0.0.1:{bport}",
                                       "--data-dir", bdir, "--config", cfg], stdout=blog, stderr=blog))
        berth = f"http://127.0.0.1:{bport}"
        wait_http(f"{berth}/v2/")
        text = open(os.path.join(bdir, "credentials")).read()
        creds = dict((k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in text.splitlines() if "=" in l))
        ecr = boto3.client("ecr", endpoint_url=berth, region_name="us-east-1",
                           aws_access_key_id=creds["aws_access_key_id"],
                           aws_secret_access_key=creds["aws_secret_access_key"])
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        auth = tuple(base64.b64decode(token).decode().split(":", 1))
        for r in range(args.rounds + 1):
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=f"round{r}", upstreamRegistryUrl="quay.io")

        def stored(repo: str) -> bool:
            try:
                return bool(ecr.describe_images(repositoryName=repo)["imageDetails"])
            except ecr.exceptions.RepositoryNotFoundException:
                return False

        results = {"direct": [], "first": [], "warm": []}
        for r in range(args.rounds):
            repo = f"round{r}/bench/image"
            order = ["direct", "first"] if r % 2 == 0 else ["first", "direct"]
            for what in order:
                if what == "direct":
                    t = pull(upstream, "bench/image", "v1", None, work)
                else:
                    t = pull(berth, repo, "v1", auth, work)
                results[what].append(t)
                log(f"round {r}: {what:6s} {t:7.2f} s  {size_gib * 1024 / t:7.0f} MiB/s")
            end = time.monotonic() + 600
            while not stored(repo) and time.monotonic() < end:
                time.sleep(0.2)
            os.sync()  # the import's writes reach the disk first: measure the pull alone
            t = pull(berth, repo, "v1", auth, work)
            results["warm"].append(t)
            log(f"round {r}: warm   {t:7.2f} s  {size_gib * 1024 / t:7.0f} MiB/s")

        # The stampede: N clients at once on one uncached image.
        repo = f"round{args.rounds}/bench/stampede"
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.stampede) as ex:
            list(ex.map(lambda _: pull(berth, repo, "v1", auth, work), range(args.stampede)))
        stampede_s = time.monotonic() - t0
        dlog.flush()
        gets = {}
        for line in open(os.path.join(ddir, "log")):
            m = re.search(r'"GET (/v2/bench/stampede/\S+) HTTP', line)
            if m and "berth/" in line:
                gets[m.group(1)] = gets.get(m.group(1), 0) + 1
        sizes = {l["digest"]: l["size"] for l in stampede_manifest["layers"]}
        sizes[stampede_manifest["config"]["digest"]] = stampede_manifest["config"]["size"]
        upstream_bytes = sum(sizes.get(p.rsplit("/", 1)[1], 0) * n for p, n in gets.items())
        image_bytes = sum(sizes.values())
        log(f"stampede: {args.stampede} clients in {stampede_s:.2f} s; upstream GETs {sorted(gets.values())}; "
            f"upstream bytes / image bytes = {upstream_bytes / image_bytes:.2f}")

        med = {k: statistics.median(v) for k, v in results.items()}
        summary = {
            "image_gib": size_gib,
            "upstream_rate_mb": args.upstream_rate_mb,
            "median_seconds": med,
            "first_over_direct": med["first"] / med["direct"],
            "warm_over_direct": med["warm"] / med["direct"],
            "stampede": {"clients": args.stampede, "seconds": stampede_s, "upstream_gets": gets,
                         "upstream_bytes_over_image_bytes": upstream_bytes / image_bytes},
        }
        log(f"median: direct {med['direct']:.2f} s, first through the cache {med['first']:.2f} s "
            f"({summary['first_over_direct']:.2f}x), warm {med['warm']:.2f} s ({summary['warm_over_direct']:.2f}x)")
        print(json.dumps(summary, indent=2))
    except BaseException:
        for name in ("berth.log", "distribution/log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                log(f"---- {name} (tail) ----\n" + "".join(open(path).readlines()[-15:]))
        raise
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
