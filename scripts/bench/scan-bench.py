#!/usr/bin/env python3
"""scan-bench.py - how fast Berth imports vulnerability data and scans a large image.

Usage: scan-bench.py BERTH_BINARY [--records N] [--image-mib M] [--packages P] [--workdir DIR]
                     [--metadata URL] [--blobs URL] [--enhanced]
(--metadata and --blobs are passed to `berth serve` and `berth admin`: PostgreSQL and S3.)

Measures (issue 15's targets in brackets):
  1. `berth admin vulndb import` of an OSV all.zip with N records (default 200,000) for
     Debian:12: wall time and peak RSS of the import process [< 60 s, < 256 MiB];
  2. a scan on push of an image whose gzip layers total M MiB compressed (default 1024),
     whose files compress about 2.5x as real images do, with a dpkg status of P packages
     (default 500) of which some are affected: from the manifest PUT to COMPLETE [< 10 s];
     and the server's peak RSS during the scan (VmHWM, reset just before the PUT) [the
     scanner adds < 256 MiB].

With --enhanced the registry's scan type is ENHANCED, the layers also hold P Python and
P npm packages, and every filler file is an ELF executable (under opt/app/bin), so the
scanner streams all of it through the Go build-information search: the worst case.

Everything runs on loopback in a temporary directory; the server is started and stopped
(by its PID) here. Prints one line per measurement.
"""
import argparse
import base64
import hashlib
import http.client
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib

import boto3

WORDS = [
    "lib", "usr", "share", "config", "python", "module", "return", "value", "error", "struct",
    "function", "import", "package", "version", "license", "copyright", "the", "and", "for",
    "static", "const", "string", "buffer", "data", "index", "manifest", "layer", "digest",
]


def osv_dump(path: str, records: int) -> None:
    """An all.zip like OSV's Debian dump: DEBIAN-CVE records for Debian:12 packages."""
    rng = random.Random(15)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for i in range(records):
            pkg = f"pkg{i % 20000}"
            rec = {
                "schema_version": "1.6.0",
                "id": f"DEBIAN-CVE-2024-{i:06d}",
                "modified": "2026-11-30T12:00:00Z",
                "published": "2024-01-01T00:00:00Z",
                "upstream": [f"CVE-2024-{i:06d}"],
                "summary": f"{pkg}: " + " ".join(rng.choice(WORDS) for _ in range(12)),
                "details": " ".join(rng.choice(WORDS) for _ in range(60)),
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
                "affected": [{
                    "package": {"ecosystem": "Debian:12", "name": pkg},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": f"1.{i % 7}-1"}]}],
                }],
                "references": [{"type": "ADVISORY", "url": f"https://security-tracker.debian.org/tracker/CVE-2024-{i:06d}"}],
            }
            z.writestr(f"{rec['id']}.json", json.dumps(rec))


def text_chunks(n: int, size: int) -> list:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        words = []
        total = 0
        while total < size:
            w = rng.choice(WORDS) + (str(rng.randrange(1 << 30)) if rng.random() < 0.5 else "")
            words.append(w)
            total += len(w) + 1
        out.append(" ".join(words).encode()[:size])
    return out


EXPANDED = 0  # uncompressed bytes of all layers built


def gzip_layer(entries, target_compressed: int, chunks, executables: bool = False) -> bytes:
    """A gzip'd tar: `entries` (name, bytes) first, then filler files until the
    compressed size reaches `target_compressed`."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = io.BytesIO()

    class Sink:
        def write(self, b):
            global EXPANDED
            EXPANDED += len(b)
            out.write(comp.compress(b))
            return len(b)

    tar = tarfile.open(fileobj=Sink(), mode="w|", format=tarfile.PAX_FORMAT)

    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    for name, data in entries:
        add(name, data)
    rng = random.Random(target_compressed)
    i = 0
    while out.tell() < target_compressed:
        body = b"".join(rng.choice(chunks) for _ in range(4))
        if executables:
            add(f"opt/app/bin/{i // 1000}/f{i}", b"\x7fELF" + body)
        else:
            add(f"usr/share/filler/{i // 1000}/f{i}.txt", body)
        i += 1
    tar.close()
    out.write(comp.flush())
    return out.getvalue()


def dpkg_status(packages: int) -> bytes:
    paras = []
    for i in range(packages):
        # Every fifth package is behind its fixes (version 1.0-1 < 1.N-1 for N > 0).
        version = "1.0-1" if i % 5 == 0 else "9.9-1"
        paras.append(f"Package: bin{i}\nStatus: install ok installed\nSource: pkg{i}\nVersion: {version}\n"
                     f"Architecture: amd64\nDescription: package {i}\n long text\n")
    return "\n".join(paras).encode()


class Registry:
    def __init__(self, port: int, password: str):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.auth = "Basic " + base64.b64encode(("AWS:" + password).encode()).decode()

    def req(self, method, path, body=None, headers=None):
        h = {"Authorization": self.auth}
        h.update(headers or {})
        self.c.request(method, path, body=body, headers=h)
        r = self.c.getresponse()
        return r.status, r.headers, r.read()

    def blob(self, repo: str, data: bytes) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        s, h, _ = self.req("POST", f"/v2/{repo}/blobs/uploads/")
        assert s == 202, s
        loc = h["Location"]
        sep = "&" if "?" in loc else "?"
        s, _, b = self.req("PUT", f"{loc}{sep}digest={d}", data, {"Content-Type": "application/octet-stream"})
        assert s == 201, (s, b)
        return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("berth")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--image-mib", type=int, default=1024)
    ap.add_argument("--packages", type=int, default=500)
    ap.add_argument("--workdir")
    ap.add_argument("--metadata")
    ap.add_argument("--blobs")
    ap.add_argument("--enhanced", action="store_true")
    a = ap.parse_args()
    store = [f"--metadata={a.metadata}"] if a.metadata else []
    store += [f"--blobs={a.blobs}"] if a.blobs else []
    work = a.workdir or tempfile.mkdtemp(prefix="berth-scan-bench-")
    data = os.path.join(work, "data")
    zip_path = os.path.join(work, "all.zip")
    t = time.perf_counter()
    osv_dump(zip_path, a.records)
    print(f"generated {a.records} OSV records ({os.path.getsize(zip_path) >> 20} MiB zip) in {time.perf_counter() - t:.1f} s", flush=True)

    proc = subprocess.Popen([a.berth, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, *store],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        timed = subprocess.run(["/usr/bin/time", "-f", "%e %M", a.berth, "admin", "vulndb", "import", zip_path,
                                "--data-dir", data, *store], capture_output=True, text=True, check=True)
        secs, kib = timed.stderr.strip().splitlines()[-1].split()
        print(f"import: {a.records} records in {float(secs):.1f} s, peak RSS {int(kib) >> 10} MiB ({timed.stdout.strip()})", flush=True)

        env = dict(l.split("=", 1) for l in subprocess.run(
            [a.berth, "env", "--data-dir", data, *store], capture_output=True, text=True, check=True
        ).stdout.replace("export ", "").replace("'", "").split("\n") if "=" in l)
        ecr = boto3.client("ecr", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        ecr.create_repository(repositoryName="big", imageScanningConfiguration={"scanOnPush": True})
        if a.enhanced:
            ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[
                {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])
        password = subprocess.run([a.berth, "admin", "login-password", "--data-dir", data, *store],
                                  capture_output=True, text=True, check=True).stdout.strip()
        reg = Registry(port, password)

        t = time.perf_counter()
        chunks = text_chunks(64, 1 << 20)
        n_layers = 4
        per_layer = (a.image_mib << 20) // n_layers
        os_release = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
        layers = []
        for i in range(n_layers):
            entries = [("etc/os-release", os_release)] if i == 0 else []
            if i == n_layers - 1:
                entries.append(("var/lib/dpkg/status", dpkg_status(a.packages)))
                if a.enhanced:
                    for p in range(a.packages):
                        entries.append((f"usr/lib/python3/dist-packages/py{p}-1.0.dist-info/METADATA",
                                        f"Metadata-Version: 2.1\nName: py{p}\nVersion: 1.0\n\nText.\n".encode()))
                        entries.append((f"app/node_modules/js{p}/package.json",
                                        json.dumps({"name": f"js{p}", "version": "1.0.0"}).encode()))
            layers.append(gzip_layer(entries, per_layer, chunks, executables=a.enhanced))
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        descs = []
        for blob in layers:
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": reg.blob("big", blob), "size": len(blob)})
        cfg_digest = reg.blob("big", config)
        total = sum(len(b) for b in layers)
        print(f"built and pushed {n_layers} layers, {total >> 20} MiB compressed ({EXPANDED >> 20} MiB as tar), in {time.perf_counter() - t:.1f} s", flush=True)
        del layers

        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": cfg_digest, "size": len(config)},
                               "layers": descs}).encode()
        with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, so the peak below is the scan's
        rss_before = status_kib(proc.pid, "VmRSS")
        t = time.perf_counter()
        s, h, b = reg.req("PUT", "/v2/big/manifests/v1", manifest,
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert s == 201, (s, b)
        digest = h["Docker-Content-Digest"]
        while True:
            out = ecr.describe_image_scan_findings(repositoryName="big", imageId={"imageDigest": digest})
            if out["imageScanStatus"]["status"] != "IN_PROGRESS":
                break
            time.sleep(0.05)
        took = time.perf_counter() - t
        peak = status_kib(proc.pid, "VmHWM")
        counts = out.get("imageScanFindings", {}).get("findingSeverityCounts")
        print(f"scan: {total >> 20} MiB compressed, {a.packages} packages: {out['imageScanStatus']['status']} "
              f"in {took:.1f} s, findings {counts}; server RSS {rss_before >> 10} MiB before, peak {peak >> 10} MiB",
              flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


if __name__ == "__main__":
    sys.exit(main())
