"""Crash safety: SIGKILL Berth in the middle of concurrent uploads, restart it,
and check that nothing torn or half-written is visible and nothing acknowledged
was lost.

Each round starts a few worker threads that keep uploading (monolithic
``POST ?digest=``, streamed ``PATCH``, chunked ``PATCH`` with ``Content-Range``,
``POST`` + ``PUT`` with the body) and putting manifests that reference blobs
uploaded earlier. At a moment drawn from a seeded RNG the server is SIGKILLed and
then restarted on the same data dir (and metadata database). Then:

* every blob digest ever attempted is either absent (HEAD 404) or present with
  exactly the right bytes (sha256 of GET == digest, right length);
* every blob or manifest the server acknowledged (201) is still there;
* every tag in tags/list resolves to a manifest whose digest verifies and whose
  config and layers are all present and verify;
* upload sessions cut off by the crash are either gone (404) or report a size no
  larger than what was sent, and can then be completed into a correct blob;
* the restarted server accepts new uploads.

Set BERTH_CRASH_SEED to replay a different schedule.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

import requests

SEED = int(os.environ.get("BERTH_CRASH_SEED", "20261122"))
ROUNDS = 8
WORKERS = 4
REPO = "crash/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
HTTP_TIMEOUT = (5, 60)  # (connect, read) seconds; bounds every request
MAX_OPS_PER_WORKER = 400
MAX_BYTES_PER_WORKER = 32 * 1024 * 1024  # bounds the data a round writes (and verifies)

# blob size buckets: (weight, min, max); the large ones keep uploads in flight
# long enough for the kill to land in the middle of one.
SIZE_BUCKETS = [(30, 1, 1024), (30, 1025, 64 * 1024), (25, 256 * 1024, 1024 * 1024), (15, 2 * 1024 * 1024, 6 * 1024 * 1024)]
OPS = [("mono", 25), ("stream", 25), ("chunked", 20), ("post_put", 10), ("manifest", 20)]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class UnexpectedResponse(Exception):
    pass


@dataclass
class Ledger:
    """What the workers attempted and what the server acknowledged (all rounds)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    attempted_blobs: dict = field(default_factory=dict)  # digest -> size
    acked_blobs: dict = field(default_factory=dict)  # digest -> size (201 received)
    attempted_manifests: dict = field(default_factory=dict)  # digest -> tag or None
    acked_manifests: dict = field(default_factory=dict)  # digest -> tag or None
    attempted_tags: set = field(default_factory=set)
    # upload sessions in flight: id -> {"path", "data", "digest", "sent"}
    sessions: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)

    def acked_blob_list(self) -> list:
        with self.lock:
            return list(self.acked_blobs.items())


def _expect(r: requests.Response, status: int, what: str) -> requests.Response:
    if r.status_code != status:
        raise UnexpectedResponse(f"{what}: expected {status}, got {r.status_code} {r.text[:300]!r}")
    return r


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest)}"


class Worker(threading.Thread):
    def __init__(self, base: str, ledger: Ledger, rng: random.Random, name: str, started: threading.Event, auth=None):
        super().__init__(name=name, daemon=True)
        self.base = base
        self.ledger = ledger
        self.rng = rng
        self.started_evt = started
        self.s = requests.Session()
        self.s.auth = auth
        self.bytes_sent = 0
        self.ops_done = 0

    # -- helpers ---------------------------------------------------------

    def url(self, location: str) -> str:
        return urllib.parse.urljoin(self.base + "/", location)

    def new_blob(self) -> tuple[str, bytes]:
        _, lo, hi = self.rng.choices(SIZE_BUCKETS, weights=[b[0] for b in SIZE_BUCKETS])[0]
        data = os.urandom(self.rng.randint(lo, hi))
        digest = sha256_digest(data)
        with self.ledger.lock:
            self.ledger.attempted_blobs[digest] = len(data)
        self.bytes_sent += len(data)
        return digest, data

    def ack_blob(self, r: requests.Response, digest: str, size: int, what: str) -> None:
        _expect(r, 201, what)
        if r.headers.get("Docker-Content-Digest") != digest:
            raise UnexpectedResponse(f"{what}: Docker-Content-Digest {r.headers.get('Docker-Content-Digest')} != {digest}")
        with self.ledger.lock:
            self.ledger.acked_blobs[digest] = size

    def start_session(self, digest: str, data: bytes) -> tuple[str, dict]:
        r = _expect(self.s.post(self.url(f"/v2/{REPO}/blobs/uploads/"), timeout=HTTP_TIMEOUT), 202, "POST upload")
        # Keep the Location's path and query (some registries keep state in the
        # query), but not its host: after a restart the port is different.
        parts = urllib.parse.urlsplit(self.url(r.headers["Location"]))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        sess = {"path": path, "data": data, "digest": digest, "sent": 0}
        key = f"{self.name}-{self.ops_done}"
        with self.ledger.lock:
            self.ledger.sessions[key] = sess
        return key, sess

    def end_session(self, key: str) -> None:
        with self.ledger.lock:
            self.ledger.sessions.pop(key, None)

    # -- operations --------------------------------------------------------

    def op_mono(self) -> None:
        digest, data = self.new_blob()
        r = self.s.post(
            self.url(f"/v2/{REPO}/blobs/uploads/?digest={urllib.parse.quote(digest)}"),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=HTTP_TIMEOUT,
        )
        self.ack_blob(r, digest, len(data), "monolithic POST")

    def op_stream(self) -> None:
        digest, data = self.new_blob()
        key, sess = self.start_session(digest, data)

        def body():  # a generator makes requests use chunked transfer encoding
            for off in range(0, len(data), 64 * 1024):
                piece = data[off : off + 64 * 1024]
                sess["sent"] = off + len(piece)  # upper bound of what the server may hold
                yield piece

        r = _expect(
            self.s.patch(self.url(sess["path"]), data=body(), headers={"Content-Type": "application/octet-stream"}, timeout=HTTP_TIMEOUT),
            202,
            "streamed PATCH",
        )
        r = self.s.put(self.url(_with_digest(r.headers["Location"], digest)), timeout=HTTP_TIMEOUT)
        self.ack_blob(r, digest, len(data), "PUT after streamed PATCH")
        self.end_session(key)

    def op_chunked(self) -> None:
        digest, data = self.new_blob()
        key, sess = self.start_session(digest, data)
        location = sess["path"]
        chunk = self.rng.choice([4096, 65536, 256 * 1024, 1024 * 1024])
        for off in range(0, len(data), chunk):
            piece = data[off : off + chunk]
            sess["sent"] = off + len(piece)
            r = _expect(
                self.s.patch(
                    self.url(location),
                    data=piece,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{off}-{off + len(piece) - 1}",
                    },
                    timeout=HTTP_TIMEOUT,
                ),
                202,
                "chunked PATCH",
            )
            if r.headers.get("Range") != f"0-{off + len(piece) - 1}":
                raise UnexpectedResponse(f"chunked PATCH: Range {r.headers.get('Range')!r} after {off + len(piece)} bytes")
            location = r.headers["Location"]
        r = self.s.put(self.url(_with_digest(location, digest)), timeout=HTTP_TIMEOUT)
        self.ack_blob(r, digest, len(data), "PUT after chunked PATCH")
        self.end_session(key)

    def op_post_put(self) -> None:
        digest, data = self.new_blob()
        key, sess = self.start_session(digest, data)
        sess["sent"] = len(data)
        r = self.s.put(
            self.url(_with_digest(sess["path"], digest)),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=HTTP_TIMEOUT,
        )
        self.ack_blob(r, digest, len(data), "PUT with body")
        self.end_session(key)

    def op_manifest(self) -> None:
        acked = self.ledger.acked_blob_list()
        if not acked:
            return self.op_mono()
        # A fresh, unique config, uploaded first (so the manifest is new too).
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Labels": {"nonce": os.urandom(8).hex()}}, "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        config_digest = sha256_digest(config)
        with self.ledger.lock:
            self.ledger.attempted_blobs[config_digest] = len(config)
        r = self.s.post(
            self.url(f"/v2/{REPO}/blobs/uploads/?digest={urllib.parse.quote(config_digest)}"),
            data=config,
            timeout=HTTP_TIMEOUT,
        )
        self.ack_blob(r, config_digest, len(config), "config POST")
        layers = self.rng.sample(acked, k=min(len(acked), self.rng.randint(1, 3)))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in layers],
            },
            indent=1,
        ).encode()
        digest = sha256_digest(manifest)
        by_digest = self.rng.random() < 0.25
        tag = None if by_digest else f"{self.name}-{self.ops_done}"
        with self.ledger.lock:
            self.ledger.attempted_manifests[digest] = tag
            if tag:
                self.ledger.attempted_tags.add(tag)
        r = self.s.put(
            self.url(f"/v2/{REPO}/manifests/{digest if by_digest else tag}"),
            data=manifest,
            headers={"Content-Type": OCI_MANIFEST},
            timeout=HTTP_TIMEOUT,
        )
        _expect(r, 201, "manifest PUT")
        if r.headers.get("Docker-Content-Digest") != digest:
            raise UnexpectedResponse(f"manifest PUT: Docker-Content-Digest {r.headers.get('Docker-Content-Digest')} != {digest}")
        with self.ledger.lock:
            self.ledger.acked_manifests[digest] = tag

    def run(self) -> None:
        ops, weights = zip(*OPS)
        try:
            for _ in range(MAX_OPS_PER_WORKER):
                if self.bytes_sent >= MAX_BYTES_PER_WORKER:
                    break
                op = self.rng.choices(ops, weights=weights)[0]
                self.started_evt.set()
                getattr(self, f"op_{op}")()
                self.ops_done += 1
        except requests.RequestException:
            pass  # the server was killed under us: expected
        except UnexpectedResponse as e:
            # A live server answered wrongly: that is a bug in itself.
            with self.ledger.lock:
                self.ledger.errors.append(f"{self.name}: {e}")
        except Exception as e:  # noqa: BLE001 - report anything else, never hang the test
            with self.ledger.lock:
                self.ledger.errors.append(f"{self.name}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------
# verification after restart
# ---------------------------------------------------------------------------


class Verifier:
    def __init__(self, base: str, ledger: Ledger, context: str, auth=None):
        self.base = base
        self.ledger = ledger
        self.ctx = context
        self.s = requests.Session()
        self.s.auth = auth
        self.verified_blobs: set = set()

    def blob_present(self, digest: str, size: Optional[int], full: bool) -> bool:
        """HEAD the blob; if present check its length (and with FULL its bytes)."""
        url = f"{self.base}/v2/{REPO}/blobs/{digest}"
        h = self.s.head(url, timeout=HTTP_TIMEOUT)
        assert h.status_code in (200, 404), f"{self.ctx}: HEAD blob {digest}: {h.status_code}"
        if h.status_code == 404:
            return False
        if size is not None:
            assert int(h.headers["Content-Length"]) == size, f"{self.ctx}: blob {digest} HEAD length {h.headers['Content-Length']} != {size}"
        if full and digest not in self.verified_blobs:
            g = self.s.get(url, timeout=HTTP_TIMEOUT)
            assert g.status_code == 200, f"{self.ctx}: HEAD said 200 but GET blob {digest} gave {g.status_code}"
            assert sha256_digest(g.content) == digest, f"{self.ctx}: blob {digest} is torn/corrupt ({len(g.content)} bytes)"
            if size is not None:
                assert len(g.content) == size
            self.verified_blobs.add(digest)
        return True

    def manifest(self, ref: str) -> Optional[bytes]:
        r = self.s.get(
            f"{self.base}/v2/{REPO}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}, timeout=HTTP_TIMEOUT
        )
        assert r.status_code in (200, 404), f"{self.ctx}: GET manifest {ref}: {r.status_code} {r.text[:200]}"
        if r.status_code == 404:
            return None
        assert r.headers["Docker-Content-Digest"] == sha256_digest(r.content), f"{self.ctx}: manifest {ref} does not match its digest"
        doc = json.loads(r.content)  # a half-written manifest would not parse
        for desc in [doc["config"], *doc["layers"]]:
            assert self.blob_present(desc["digest"], desc["size"], full=True), (
                f"{self.ctx}: manifest {ref} references blob {desc['digest']}, which is missing"
            )
        return r.content

    def run(self, full_blobs: set) -> None:
        led = self.ledger
        # 1. Every blob ever attempted: absent, or present with the right bytes.
        #    (Blobs from earlier rounds are fully re-read only when listed in FULL_BLOBS.)
        for digest, size in list(led.attempted_blobs.items()):
            present = self.blob_present(digest, size, full=digest in full_blobs)
            if digest in led.acked_blobs:
                assert present, f"{self.ctx}: acknowledged blob {digest} ({size} bytes) was lost"

        # 2. Every tag listed resolves to a complete, verifiable manifest.
        r = self.s.get(f"{self.base}/v2/{REPO}/tags/list", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"{self.ctx}: tags/list {r.status_code} {r.text[:200]}"
        tags = r.json().get("tags") or []
        unknown = set(tags) - led.attempted_tags
        assert not unknown, f"{self.ctx}: tags nobody pushed: {sorted(unknown)[:5]}"
        tag_digest = {}
        for tag in tags:
            body = self.manifest(tag)
            assert body is not None, f"{self.ctx}: tag {tag} is listed but its manifest is missing"
            tag_digest[tag] = sha256_digest(body)

        # 3. Every manifest attempted: absent or complete; acknowledged ones present.
        for digest, tag in list(led.attempted_manifests.items()):
            body = self.manifest(digest)
            if digest in led.acked_manifests:
                assert body is not None, f"{self.ctx}: acknowledged manifest {digest} (tag {tag}) was lost"
                if tag:
                    assert tag_digest.get(tag) == digest, f"{self.ctx}: acknowledged tag {tag} lost or moved"
            if body is not None:
                assert sha256_digest(body) == digest

    def check_sessions(self) -> None:
        """Uploads cut off by the crash: gone, or resumable from a truthful offset."""
        for key, sess in list(self.ledger.sessions.items()):
            url = f"{self.base}{sess['path']}"
            r = self.s.get(url, timeout=HTTP_TIMEOUT)
            assert r.status_code in (204, 404), f"{self.ctx}: upload status {key}: {r.status_code} {r.text[:200]}"
            if r.status_code == 204:
                start, end = (int(x) for x in r.headers["Range"].split("-", 1))
                assert start == 0
                data, digest = sess["data"], sess["digest"]
                # Follow the Location the status answer gives (it may carry state).
                loc = urllib.parse.urljoin(self.base + "/", r.headers.get("Location") or sess["path"])
                if end == 0:
                    # "0-0" does not tell 0 bytes from 1 byte; just discard it.
                    d = self.s.delete(loc, timeout=HTTP_TIMEOUT)
                    assert d.status_code == 204, f"{self.ctx}: DELETE upload {key}: {d.status_code}"
                else:
                    stored = end + 1
                    assert stored <= sess["sent"], f"{self.ctx}: upload {key} claims {stored} bytes, only {sess['sent']} were sent"
                    if stored < len(data):
                        p = self.s.patch(
                            loc,
                            data=data[stored:],
                            headers={"Content-Range": f"{stored}-{len(data) - 1}", "Content-Type": "application/octet-stream"},
                            timeout=HTTP_TIMEOUT,
                        )
                        assert p.status_code == 202, f"{self.ctx}: resuming upload {key}: {p.status_code} {p.text[:200]}"
                        loc = urllib.parse.urljoin(self.base + "/", p.headers["Location"])
                    f = self.s.put(_with_digest(loc, digest), timeout=HTTP_TIMEOUT)
                    assert f.status_code == 201, (
                        f"{self.ctx}: completing resumed upload {key} ({stored} of {len(data)} bytes kept): "
                        f"{f.status_code} {f.text[:200]} - the kept prefix is not what was sent"
                    )
                    with self.ledger.lock:
                        self.ledger.acked_blobs[digest] = len(data)
                    self.verified_blobs.discard(digest)
                    assert self.blob_present(digest, len(data), full=True)
            with self.ledger.lock:
                self.ledger.sessions.pop(key, None)

    def writable(self) -> None:
        """The recovered server accepts a new blob and a manifest."""
        data = os.urandom(4096)
        digest = sha256_digest(data)
        r = self.s.post(f"{self.base}/v2/{REPO}/blobs/uploads/?digest={urllib.parse.quote(digest)}", data=data, timeout=HTTP_TIMEOUT)
        assert r.status_code == 201, f"{self.ctx}: upload after recovery: {r.status_code} {r.text[:200]}"
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        cd = sha256_digest(config)
        r = self.s.post(f"{self.base}/v2/{REPO}/blobs/uploads/?digest={urllib.parse.quote(cd)}", data=config, timeout=HTTP_TIMEOUT)
        assert r.status_code == 201, f"{self.ctx}: config upload after recovery: {r.status_code}"
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}],
            }
        ).encode()
        tag = f"recovered-{os.urandom(4).hex()}"
        r = self.s.put(f"{self.base}/v2/{REPO}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 201, f"{self.ctx}: manifest PUT after recovery: {r.status_code} {r.text[:200]}"
        md = sha256_digest(manifest)
        with self.ledger.lock:
            self.ledger.attempted_blobs.update({digest: len(data), cd: len(config)})
            self.ledger.acked_blobs.update({digest: len(data), cd: len(config)})
            self.ledger.attempted_manifests[md] = tag
            self.ledger.acked_manifests[md] = tag
            self.ledger.attempted_tags.add(tag)


def test_sigkill_during_uploads_leaves_consistent_state(berth):
    berth.create_repository(REPO)
    rng = random.Random(SEED)
    ledger = Ledger()
    print(f"crash test seed {SEED} (replay with BERTH_CRASH_SEED={SEED})")

    # Tokens stay valid across restarts: the signing key lives in the metadata store.
    auth = berth.registry_auth()
    for rnd in range(ROUNDS):
        ctx = f"round {rnd} (seed {SEED})"
        blobs_before = set(ledger.attempted_blobs)
        started = threading.Event()
        workers = [
            Worker(berth.url, ledger, random.Random(f"{SEED}-{rnd}-{w}"), f"r{rnd}-w{w}", started, auth=auth)
            for w in range(WORKERS)
        ]
        for w in workers:
            w.start()
        assert started.wait(timeout=30), f"{ctx}: no worker started"

        # The kill moment: a random delay from the seeded RNG (this is the point
        # of the test, not a synchronisation), cut short if all workers finish.
        delay = rng.uniform(0.05, 1.2)
        all_done = threading.Event()
        threading.Thread(target=lambda: ([w.join() for w in workers], all_done.set()), daemon=True).start()
        all_done.wait(timeout=delay)
        berth.kill()

        for w in workers:
            w.join(timeout=120)
            assert not w.is_alive(), f"{ctx}: worker {w.name} hung after the kill"
        assert not ledger.errors, f"{ctx}: the live server answered wrongly:\n" + "\n".join(ledger.errors)
        print(
            f"{ctx}: killed after {delay:.2f}s; ops {sum(w.ops_done for w in workers)}, "
            f"{len(ledger.sessions)} uploads in flight, {len(ledger.attempted_blobs)} blobs attempted, "
            f"{len(ledger.acked_blobs)} acked, {len(ledger.acked_manifests)} manifests acked"
        )

        berth.start()
        verifier = Verifier(berth.url, ledger, ctx, auth=auth)
        last = rnd == ROUNDS - 1
        # This round's blobs are read back in full; older ones only in the last round
        # (they were read in full in their own round already).
        full = set(ledger.attempted_blobs) if last else set(ledger.attempted_blobs) - blobs_before
        verifier.check_sessions()
        verifier.run(full)
        verifier.writable()

    assert ledger.acked_blobs, "no upload ever completed: the test did not exercise anything"
    assert ledger.acked_manifests, "no manifest was ever stored"

    # Nothing the crashes cut short is left behind: once the collector has discarded
    # the abandoned uploads, every stored object is a recorded blob.
    berth.admin("gc", "--grace", "0")
    total = [l for l in berth.admin("storage").stdout.splitlines() if l.startswith("total")][0]
    recorded = int(total.split("\t")[1].split()[0])
    assert berth.stored_blobs()[0] == recorded, (berth.stored_blobs(), total)
    berth.stop()
