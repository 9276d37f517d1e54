"""Online garbage collection (`berth admin gc`, the server's GC job) and storage reports.

What this file covers:

* After images are deleted, GC removes the blobs only they used (and reports the bytes
  freed), keeps everything still referenced, removes abandoned uploads, and respects
  the grace period (nothing younger is touched).
* A layer BatchCheckLayerAvailability reports available survives a collection that
  starts right after (its link is refreshed), as one behind a blob HEAD does.
* `berth admin storage` reports storage per repository and in total, and the files on
  disk match it.
* The concurrency test: GC runs in a loop while several threads push images that share
  base layers, delete images and pull them. Every push succeeds, every byte pulled
  verifies, and afterwards every image still listed pulls and verifies and storage is
  exactly what the remaining images reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from ocihelpers import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Registry, describe, sha256

GRACE = 2  # seconds, for the concurrency test


def blob(data: bytes) -> dict:
    return {"mediaType": OCI_LAYER, "digest": sha256(data), "size": len(data)}


def make_image(base: list[bytes], unique_size: int = 3000) -> tuple[bytes, dict[str, bytes]]:
    """A manifest with the given shared layers plus a unique layer and config."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": os.urandom(8).hex()}}}).encode()
    layers = base + [os.urandom(unique_size)]
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [blob(l) for l in layers],
    }).encode()
    blobs = {sha256(b): b for b in [config, *layers]}
    return manifest, blobs


def push(reg: Registry, repo: str, tag: str, manifest: bytes, blobs: dict[str, bytes]) -> str:
    """As docker does: HEAD each blob, upload the missing ones, then PUT the manifest."""
    for digest, data in blobs.items():
        r = reg.head(f"/v2/{repo}/blobs/{digest}")
        if r.status_code == 200:
            continue
        assert r.status_code == 404, describe(r)
        loc = reg.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        r = reg.put(loc, params={"digest": digest}, data=data)
        assert r.status_code == 201, describe(r)
    r = reg.put(f"/v2/{repo}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, describe(r)
    return sha256(manifest)


def pull_and_verify(reg: Registry, repo: str, ref: str) -> bool:
    """Pull an image and verify every byte; False if it is (being) deleted."""
    r = reg.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    if r.status_code == 404:
        return False
    assert r.status_code == 200, describe(r)
    assert r.headers["Docker-Content-Digest"] == sha256(r.content)
    m = json.loads(r.content)
    for d in [m["config"]] + m["layers"]:
        b = reg.get(f"/v2/{repo}/blobs/{d['digest']}")
        if b.status_code == 404:
            return False
        assert b.status_code == 200, describe(b)
        assert hashlib.sha256(b.content).hexdigest() == d["digest"].split(":")[1], "corrupt blob"
    return True


def gc(berth, grace: int) -> dict:
    out = berth.admin("gc", "--grace", str(grace)).stdout.strip()
    # gc: freed N bytes: B blobs, L repository links, U abandoned uploads
    words = out.replace(",", "").replace(":", "").split()
    return {"bytes": int(words[2]), "blobs": int(words[4]), "links": int(words[6]), "uploads": int(words[9])}


def storage(berth) -> tuple[dict[str, int], int, int]:
    per_repo, total_blobs, total_bytes = {}, 0, 0
    for line in berth.admin("storage").stdout.splitlines():
        cols = line.split("\t")
        if cols[0] == "total":
            total_blobs, total_bytes = int(cols[1].split()[0]), int(cols[2].split()[0])
        else:
            per_repo[cols[2]] = int(cols[4].split()[0])
    return per_repo, total_blobs, total_bytes


def files_on_disk(berth) -> tuple[int, int]:
    return berth.stored_blobs()


def test_gc_removes_what_deleted_images_alone_used(berth):
    berth.create_repository("app")
    reg = Registry(berth.url, auth=berth.registry_auth())
    base = [os.urandom(5000)]
    keep_m, keep_b = make_image(base)
    drop_m, drop_b = make_image(base)
    push(reg, "app", "keep", keep_m, keep_b)
    push(reg, "app", "drop", drop_m, drop_b)
    # An abandoned upload.
    loc = reg.post("/v2/app/blobs/uploads/").headers["Location"]
    assert reg.patch(loc, data=b"partial", headers={"Content-Type": "application/octet-stream"}).status_code == 202

    assert reg.delete(f"/v2/app/manifests/{sha256(drop_m)}").status_code == 202
    # Within the grace period nothing goes.
    assert gc(berth, 3600) == {"bytes": 0, "blobs": 0, "links": 0, "uploads": 0}

    only_dropped = set(drop_b) - set(keep_b)
    freed = gc(berth, 0)
    assert freed == {"bytes": sum(len(drop_b[d]) for d in only_dropped), "blobs": len(only_dropped),
                     "links": len(only_dropped), "uploads": 1}
    assert pull_and_verify(reg, "app", "keep")
    for d in only_dropped:
        assert reg.head(f"/v2/app/blobs/{d}").status_code == 404
    r = reg.patch(loc, data=b"more", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"

    per_repo, total_blobs, total_bytes = storage(berth)
    assert per_repo == {"app": sum(len(b) for b in keep_b.values())}
    assert (total_blobs, total_bytes) == (len(keep_b), sum(len(b) for b in keep_b.values()))
    assert files_on_disk(berth) == (total_blobs, total_bytes)
    # Nothing left to do.
    assert gc(berth, 0) == {"bytes": 0, "blobs": 0, "links": 0, "uploads": 0}


def test_a_blob_shared_with_another_repository_stays(berth):
    berth.create_repository("one")
    berth.create_repository("two")
    reg = Registry(berth.url, auth=berth.registry_auth())
    shared = [os.urandom(4000)]
    m1, b1 = make_image(shared)
    m2, b2 = make_image(shared)
    push(reg, "one", "v1", m1, b1)
    push(reg, "two", "v1", m2, b2)
    assert reg.delete(f"/v2/one/manifests/{sha256(m1)}").status_code == 202
    freed = gc(berth, 0)
    # one's links all go; of the blobs, only those two does not use.
    assert freed["links"] == len(b1)
    assert freed["blobs"] == len(set(b1) - set(b2))
    assert pull_and_verify(reg, "two", "v1")


def upload_and_age(reg: Registry, repo: str, blobs: dict[str, bytes], seconds: float) -> None:
    """Upload blobs (linked, referenced by nothing) and let `seconds` pass."""
    for digest, data in blobs.items():
        loc = reg.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert reg.put(loc, params={"digest": digest}, data=data).status_code == 201
    uploaded = time.monotonic()
    while time.monotonic() < uploaded + seconds:
        time.sleep(0.1)  # waiting for the clock, not for the server


def test_a_layer_reported_available_outlives_the_next_collection(berth_factory):
    """BatchCheckLayerAvailability, like docker's blob HEAD, tells a client it may skip an
    upload: the links it reports available are refreshed, so a collection that starts
    right after leaves them for the PutImage that relies on them."""
    berth = berth_factory(extra_args=["--gc-grace", "2", "--gc-interval", "0"])
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    reg = Registry(berth.url, auth=berth.registry_auth())
    manifest, blobs = make_image([])
    # Unreferenced links older than a 1 s grace, and past the refresh threshold of the
    # server's 2 s grace (half a second): a collection now would remove them.
    upload_and_age(reg, "app", blobs, 1.5)
    layers = ecr.batch_check_layer_availability(repositoryName="app", layerDigests=list(blobs))["layers"]
    assert {l["layerDigest"]: l["layerAvailability"] for l in layers} == {d: "AVAILABLE" for d in blobs}
    assert gc(berth, 1)["links"] == 0
    ecr.put_image(repositoryName="app", imageManifest=manifest.decode(), imageTag="v1")
    assert pull_and_verify(reg, "app", "v1")
    # Unrefreshed, the same links go: the collection above was able to remove them.
    _, other_blobs = make_image([])
    upload_and_age(reg, "app", other_blobs, 1.5)
    assert gc(berth, 1)["links"] == len(other_blobs)


def test_gc_runs_online_alongside_pushes_deletes_and_pulls(berth_factory):
    berth = berth_factory(extra_args=["--gc-grace", str(GRACE), "--gc-interval", "0"])
    repos = ["svc-a", "svc-b", "svc-c"]
    for r in repos:
        berth.create_repository(r)
    auth = berth.registry_auth()
    base_layers = [[os.urandom(20_000) for _ in range(2)] for _ in range(3)]
    lock = threading.Lock()
    pushed: dict[tuple[str, str], str] = {}  # (repo, tag) -> manifest digest
    deleted: set[tuple[str, str]] = set()
    errors: list[str] = []
    done = threading.Event()
    gc_runs: list[dict] = []

    def pusher(n: int):
        reg = Registry(berth.url, auth=auth)
        rnd = random.Random(n)
        try:
            for i in range(60):
                repo = rnd.choice(repos)
                m, b = make_image(rnd.choice(base_layers), unique_size=rnd.randint(1000, 30_000))
                tag = f"t{n}-{i}"
                digest = push(reg, repo, tag, m, b)
                with lock:
                    pushed[(repo, tag)] = digest
        except AssertionError as e:
            errors.append(f"push: {e}")

    def deleter():
        reg = Registry(berth.url, auth=auth)
        rnd = random.Random(99)
        try:
            while not done.is_set() or len(deleted) < len(pushed) // 2:
                with lock:
                    # Keep about half of what was pushed.
                    candidates = [k for k in pushed if k not in deleted] if len(deleted) < len(pushed) // 2 else []
                if not candidates:
                    if done.is_set():
                        return
                    done.wait(0.005)  # back off until something is pushed
                    continue
                repo, tag = rnd.choice(candidates)
                with lock:
                    deleted.add((repo, tag))  # before the request: a puller may see it go
                r = reg.delete(f"/v2/{repo}/manifests/{pushed[(repo, tag)]}")
                assert r.status_code in (202, 404), describe(r)
                if len(deleted) >= len(pushed) // 2 and done.is_set():
                    return
        except AssertionError as e:
            errors.append(f"delete: {e}")

    def puller():
        reg = Registry(berth.url, auth=auth)
        rnd = random.Random(7)
        try:
            while not done.is_set():
                with lock:
                    items = list(pushed.items())
                if not items:
                    done.wait(0.005)  # back off until something is pushed
                    continue
                (repo, tag), digest = rnd.choice(items)
                if not pull_and_verify(reg, repo, digest):
                    with lock:
                        assert (repo, tag) in deleted, f"{repo}:{tag} vanished without being deleted"
        except AssertionError as e:
            errors.append(f"pull: {e}")

    def collector():
        try:
            while not done.is_set():
                gc_runs.append(gc(berth, GRACE))
        except AssertionError as e:
            errors.append(f"gc: {e}")

    pushers = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    others = [threading.Thread(target=f) for f in (deleter, puller, collector)]
    for t in pushers + others:
        t.start()
    for t in pushers:
        t.join(timeout=600)
    done.set()
    for t in others:
        t.join(timeout=600)
    assert not errors, errors[:5]
    assert len(pushed) == 240
    assert len(gc_runs) >= 3
    # GC really raced the pushes: it freed blobs while they were going on.
    assert sum(r["blobs"] for r in gc_runs) > 0, gc_runs

    # Quiescent now: collect everything unreferenced.
    gc(berth, 0)
    reg = Registry(berth.url, auth=auth)
    expected: dict[str, int] = {}
    referenced: dict[str, dict[str, int]] = {r: {} for r in repos}
    for (repo, tag), digest in pushed.items():
        listed = reg.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        if (repo, tag) in deleted:
            assert listed.status_code == 404
            continue
        assert listed.status_code == 200, describe(listed)
        assert pull_and_verify(reg, repo, tag)
        m = json.loads(listed.content)
        for d in [m["config"]] + m["layers"]:
            expected[d["digest"]] = d["size"]
            referenced[repo][d["digest"]] = d["size"]
    per_repo, total_blobs, total_bytes = storage(berth)
    assert per_repo == {r: sum(referenced[r].values()) for r in repos}
    assert (total_blobs, total_bytes) == (len(expected), sum(expected.values()))
    assert files_on_disk(berth) == (total_blobs, total_bytes)
