"""Background jobs with two real `berth serve` processes sharing one metadata store.

What this file covers:

* A job (the scan job, which consumes the outbox) is held by exactly one of two nodes;
  an image pushed through the other node is still scanned (its push wrote the event,
  the holder handled it).
* `kill -9` of the holder: the other node takes the job over once the lease runs out
  (`--job-lease 2`), with a higher fence, and goes on from the dead holder's cursor.
* `berth admin jobs` shows who holds what.

The two nodes share PostgreSQL when BERTH_TEST_POSTGRES is set, else one SQLite file
both open by URL (so neither caches reads: a `sqlite:` URL may be shared).
"""

from __future__ import annotations

import json
import os
import shutil
import time

from conftest import fresh_s3_prefix
from vulnimages import layer, put_layers_via_api, tree, wait_for_scan

LEASE_SECONDS = "2"


def push_unsupported_image(ecr, repo: str, tag: str) -> str:
    """A real (parseable) image with no os-release: whatever vulnerability data is loaded,
    its scan ends UNSUPPORTED_IMAGE, so it shows the job ran without depending on data."""
    files = {"bin/app": b"\x7fELF" + bytes(64), "etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/hostname": tag}
    return put_layers_via_api(ecr, repo, [layer(tree(files))], tag=tag)


def jobs(node, key_file) -> dict:
    out = node.admin("jobs", "--master-key-file", str(key_file)).stdout
    return {row["job"]: row for row in map(json.loads, out.splitlines())}


def wait_until(what: str, check, timeout: float = 30.0):
    """Poll `check` until it returns something truthy (a condition, not a delay)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def holder_pid(row: dict) -> int | None:
    # serve@<host>:<pid>:<nonce>
    holder = row.get("holder")
    return int(holder.split(":")[-2]) if holder else None


def two_nodes(berth_factory, tmp_path, s3_bucket):
    """Two nodes as deploy.md builds them: one metadata store, one bucket (a scan on
    one node reads layers pushed through the other)."""
    key = tmp_path / "master.key"
    args = ["--master-key-file", str(key), "--job-lease", LEASE_SECONDS]
    shared = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    a = berth_factory(extra_args=args, metadata_url=shared, blobs_url=blobs)
    b = berth_factory(extra_args=args, metadata_url=a.metadata_url, blobs_url=blobs)
    # One account, one root key: the second node's first start found them created.
    shutil.copy(a.data_dir / "credentials", b.data_dir / "credentials")
    return a, b, key


def scanned(node, repo: str, digest: str) -> dict:
    """Wait until the scan job has finished the image's scan; its first findings page."""
    return wait_for_scan(node.ecr(), repo, digest, timeout=30)


def test_the_scan_job_runs_on_one_node_and_moves_when_its_holder_is_killed(berth_factory, tmp_path, s3_bucket):
    a, b, key = two_nodes(berth_factory, tmp_path, s3_bucket)
    nodes = {a.pid: a, b.pid: b}
    row = wait_until("a holder of the scan job", lambda: (r := jobs(a, key).get("outbox:scans")) and r["holder"] and r)
    holder = nodes[holder_pid(row)]
    other = b if holder is a else a
    fence = row["fence"]

    # Pushed through the node that does not run the job: the holder scans it.
    other.ecr().create_repository(repositoryName="scanned", imageScanningConfiguration={"scanOnPush": True})
    v1 = push_unsupported_image(other.ecr(), "scanned", "v1")
    assert scanned(other, "scanned", v1)["imageScanStatus"]["status"] == "UNSUPPORTED_IMAGE"
    assert holder_pid(jobs(other, key)["outbox:scans"]) == holder.pid, "the job stayed where it was"

    holder.kill()
    row = wait_until(
        "the surviving node to take the scan job over",
        lambda: (r := jobs(other, key)["outbox:scans"]) and holder_pid(r) == other.pid and r,
    )
    assert row["fence"] > fence, "a takeover raises the fence"

    v2 = push_unsupported_image(other.ecr(), "scanned", "v2")
    found = scanned(other, "scanned", v2)
    assert found["imageScanStatus"]["status"] == "UNSUPPORTED_IMAGE"
    # The cursor is recorded within a second of the events it passed.
    wait_until("the cursor to be recorded", lambda: jobs(other, key)["outbox:scans"]["cursor"] >= 2)
