"""Blobs on S3-compatible object storage (a real SeaweedFS, SigV4 enforced).

What this file covers, whatever configuration the rest of the suite runs in:

* blob GETs redirect to presigned URLs with ``--blob-redirect`` (ranges included), and
  docker pulls through them; GetDownloadUrlForLayer hands out presigned URLs, naming
  the public endpoint when one is configured;
* a chunked upload whose PATCHes go to two nodes (shared metadata and bucket), with
  chunks that do and do not fill an S3 part;
* abandoned uploads and collected blobs leave no object behind;
* the engine killed in the middle of an upload: clear 5xx answers, nothing half
  visible, and the upload goes on once the engine is back;
* bad settings stop the start with a reason (credentials, redirect without a bucket).

With BERTH_TEST_S3 set the whole suite also runs on S3 (conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import requests

from conftest import fresh_s3_prefix, s3_keys, s3_objects, start_s3_server, stop_s3_server
from ocihelpers import Registry, describe, path_of, push_image, sha256, upload_blob

MiB = 1024 * 1024


def endpoint_of(blobs_url: str) -> str:
    return blobs_url.partition("endpoint=")[2].partition("&")[0]


def on_s3(berth_factory, s3_bucket, **kw):
    return berth_factory(blobs_url=fresh_s3_prefix(s3_bucket), **kw)


def test_downloads_redirect_to_presigned_urls(berth_factory, s3_bucket):
    b = on_s3(berth_factory, s3_bucket, extra_args=["--blob-redirect"])
    b.create_repository("app")
    reg = Registry(b.url, auth=b.registry_auth())
    data = os.urandom(3 * MiB + 5)
    digest = upload_blob(reg, "app", data)

    r = reg.get(f"/v2/app/blobs/{digest}")
    assert r.status_code == 307, describe(r)
    location = r.headers["Location"]
    assert location.startswith(endpoint_of(b.blobs_url) + "/"), location
    assert "X-Amz-Signature=" in location
    assert r.headers["Docker-Content-Digest"] == digest
    assert requests.get(location, timeout=60).content == data
    # The client sends its Range to object storage.
    part = requests.get(location, headers={"Range": "bytes=100-199"}, timeout=60)
    assert part.status_code == 206 and part.content == data[100:200]
    # HEAD is answered here, and an unknown blob is still the registry's 404.
    head = reg.head(f"/v2/app/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    missing = reg.get(f"/v2/app/blobs/{sha256(b'nothing')}")
    assert missing.status_code == 404, describe(missing)


def test_docker_pulls_through_the_redirect(berth_factory, s3_bucket, docker_env, build_test_image):
    from test_clients import docker, docker_login, docker_push

    b = on_s3(berth_factory, s3_bucket, extra_args=["--blob-redirect"])
    b.create_repository("my-app")
    docker_login(docker_env, b, b.registry_host())
    ref = f"{b.registry_host()}/my-app:latest"
    local = build_test_image()
    docker(docker_env, "tag", local, ref)
    pushed, _ = docker_push(docker_env, ref)
    docker(docker_env, "rmi", ref, local)
    docker(docker_env, "pull", ref)
    out = docker(docker_env, "run", "--rm", "--network", "none", ref).stdout
    assert "tini version" in out
    # Every layer went to object storage, none through the server's own bytes path.
    manifest = Registry(b.url, auth=b.registry_auth()).get(
        "/v2/my-app/manifests/latest", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    )
    assert manifest.headers["Docker-Content-Digest"] == pushed


def test_download_urls_name_the_public_endpoint(berth_factory, s3_bucket):
    public = endpoint_of(s3_bucket).replace("127.0.0.1", "localhost")
    url = fresh_s3_prefix(s3_bucket) + "&public_endpoint=" + public
    b = berth_factory(blobs_url=url, extra_args=["--blob-redirect"])
    b.create_repository("app")
    reg = Registry(b.url, auth=b.registry_auth())
    data = b"public endpoint"
    digest = upload_blob(reg, "app", data)
    download = b.ecr().get_download_url_for_layer(repositoryName="app", layerDigest=digest)["downloadUrl"]
    assert download.startswith(public + "/"), download
    assert requests.get(download, timeout=30).content == data
    redirect = reg.get(f"/v2/app/blobs/{digest}").headers["Location"]
    assert redirect.startswith(public + "/") and requests.get(redirect, timeout=30).content == data


def two_nodes(berth_factory, tmp_path, s3_bucket):
    key = tmp_path / "master.key"
    shared_meta = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    args = ["--master-key-file", str(key)]
    a = berth_factory(extra_args=args, metadata_url=shared_meta, blobs_url=blobs)
    b = berth_factory(extra_args=args, metadata_url=a.metadata_url, blobs_url=blobs)
    shutil.copy(a.data_dir / "credentials", b.data_dir / "credentials")
    return a, b


def test_a_chunked_upload_continues_on_another_node(berth_factory, tmp_path, s3_bucket):
    a, b = two_nodes(berth_factory, tmp_path, s3_bucket)
    a.create_repository("app")
    regs = [Registry(a.url, auth=a.registry_auth()), Registry(b.url, auth=b.registry_auth())]
    # 1 B, a chunk under a part, one over a part, and the last chunk with the PUT.
    data = os.urandom(1 + 3 * MiB + 9 * MiB + 2 * MiB)
    pieces = [data[:1], data[1 : 1 + 3 * MiB], data[1 + 3 * MiB : 1 + 12 * MiB]]
    location = path_of(regs[0].post("/v2/app/blobs/uploads/").headers["Location"])
    offset = 0
    for i, piece in enumerate(pieces):
        reg = regs[i % 2]
        r = reg.patch(
            location,
            data=piece,
            headers={"Content-Range": f"{offset}-{offset + len(piece) - 1}", "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        assert r.headers["Range"] == f"0-{offset - 1}"
        location = path_of(r.headers["Location"])
        # The other node reports the same progress.
        status = regs[(i + 1) % 2].get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}", describe(status)
    done = regs[1].put(location, params={"digest": sha256(data)}, data=data[offset:])
    assert done.status_code == 201, describe(done)
    for reg in regs:
        assert reg.get(f"/v2/app/blobs/{sha256(data)}").content == data


def test_abandoned_uploads_and_collected_blobs_leave_no_object(berth_factory, s3_bucket):
    b = on_s3(berth_factory, s3_bucket)
    b.create_repository("app")
    reg = Registry(b.url, auth=b.registry_auth())
    # An upload abandoned after a full part and a tail: a multipart upload and an object.
    loc = path_of(reg.post("/v2/app/blobs/uploads/").headers["Location"])
    r = reg.patch(loc, data=os.urandom(9 * MiB), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, describe(r)
    # A blob nobody references.
    upload_blob(reg, "app", os.urandom(1000))
    image = push_image(reg, "app", "v1")
    assert reg.delete(f"/v2/app/manifests/{image.digest}").status_code == 202
    assert s3_objects(b.blobs_url), "the uploads stored objects"
    out = b.admin("gc", "--grace", "0").stdout
    assert "1 abandoned uploads" in out, out
    assert s3_objects(b.blobs_url) == [], "nothing is left in the bucket"


def test_an_outage_of_object_storage_fails_cleanly_and_recovers(berth_factory, tmp_path):
    s3_dir = tmp_path / "s3"
    # The server of the moment (it is stopped and started again): the one to stop.
    running = [start_s3_server(s3_dir)]
    try:
        with s3_keys(running[0]):
            outage(berth_factory, running, s3_dir)
    finally:
        stop_s3_server(running[-1])


def outage(berth_factory, running: list, s3_dir) -> None:
    env = running[-1]
    b = berth_factory(blobs_url=fresh_s3_prefix(env["BERTH_TEST_S3"]))
    b.create_repository("app")
    reg = Registry(b.url, auth=b.registry_auth())
    kept = os.urandom(2 * MiB)
    kept_digest = upload_blob(reg, "app", kept)
    loc = path_of(reg.post("/v2/app/blobs/uploads/").headers["Location"])
    first = os.urandom(6 * MiB)
    assert reg.patch(loc, data=first, headers={"Content-Type": "application/octet-stream"}).status_code == 202

    stop_s3_server(env)
    started = time.monotonic()
    r = reg.patch(loc, data=os.urandom(MiB), headers={"Content-Type": "application/octet-stream"})
    assert 500 <= r.status_code < 600, describe(r)
    r = reg.get(f"/v2/app/blobs/{kept_digest}")
    assert 500 <= r.status_code < 600, describe(r)
    r = reg.post(f"/v2/app/blobs/uploads/?digest={sha256(b'x')}", data=b"x")
    assert 500 <= r.status_code < 600, describe(r)
    assert time.monotonic() - started < 90, "the errors came promptly"
    # Nothing half-written became visible.
    assert reg.head(f"/v2/app/blobs/{sha256(b'x')}").status_code == 404

    running.append(start_s3_server(s3_dir))
    # The upload goes on from where it was; what was stored is whole.
    status = reg.get(loc)
    assert status.headers["Range"] == f"0-{len(first) - 1}", describe(status)
    rest = os.urandom(MiB)
    done = reg.put(loc, params={"digest": sha256(first + rest)}, data=rest)
    assert done.status_code == 201, describe(done)
    assert reg.get(f"/v2/app/blobs/{sha256(first + rest)}").content == first + rest
    assert reg.get(f"/v2/app/blobs/{kept_digest}").content == kept


def serve_fails(berth_bin, tmp_path, args, env) -> str:
    run = subprocess.run(
        [str(berth_bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode != 0, run
    return run.stderr


def test_bad_blob_settings_stop_the_start(berth_bin, tmp_path, s3_bucket):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BERTH_"))}
    url = fresh_s3_prefix(s3_bucket)
    err = serve_fails(berth_bin, tmp_path, ["--blobs", url], base)
    assert "BERTH_S3_ACCESS_KEY_ID" in err, err
    secret = "S3CRETVALUE42"
    wrong = dict(base, BERTH_S3_ACCESS_KEY_ID=os.environ["BERTH_S3_ACCESS_KEY_ID"], BERTH_S3_SECRET_ACCESS_KEY=secret)
    err = serve_fails(berth_bin, tmp_path, ["--blobs", url], wrong)
    assert "reaching the bucket berth-test" in err, err
    assert secret not in err, "the secret is never printed"
    err = serve_fails(berth_bin, tmp_path, ["--blob-redirect"], base)
    assert "--blob-redirect needs S3 blob storage" in err, err
    err = serve_fails(berth_bin, tmp_path, ["--blobs", "s3://Bad_Bucket"], base)
    assert "not a bucket name" in err, err


def test_the_root_key_file_is_not_where_bucket_keys_come_from(berth_bin, tmp_path, s3_bucket):
    # AWS_* in the environment are used when BERTH_S3_* are absent ...
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BERTH_"))}
    aws = dict(
        base,
        AWS_ACCESS_KEY_ID=os.environ["BERTH_S3_ACCESS_KEY_ID"],
        AWS_SECRET_ACCESS_KEY=os.environ["BERTH_S3_SECRET_ACCESS_KEY"],
    )
    run = subprocess.run(
        [str(berth_bin), "admin", "storage", "--data-dir", str(tmp_path / "d"), "--blobs", fresh_s3_prefix(s3_bucket)],
        capture_output=True, text=True, timeout=120, env=aws, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    # ... but never a shared credentials file (which holds Berth's own keys).
    creds = tmp_path / "aws-credentials"
    creds.write_text(f"[default]\naws_access_key_id = {aws['AWS_ACCESS_KEY_ID']}\naws_secret_access_key = {aws['AWS_SECRET_ACCESS_KEY']}\n")
    only_file = dict(base, AWS_SHARED_CREDENTIALS_FILE=str(creds))
    err = serve_fails(berth_bin, tmp_path, ["--blobs", fresh_s3_prefix(s3_bucket)], only_file)
    assert "BERTH_S3_ACCESS_KEY_ID" in err, err


def test_the_api_upload_rules_hold_across_nodes(berth_factory, tmp_path, s3_bucket):
    a, b = two_nodes(berth_factory, tmp_path, s3_bucket)
    ecr_a, ecr_b = a.ecr(), b.ecr()
    ecr_a.create_repository(repositoryName="parts")
    data = os.urandom(MiB + 10)
    up = ecr_a.initiate_layer_upload(repositoryName="parts")["uploadId"]
    ecr_a.upload_layer_part(repositoryName="parts", uploadId=up, partFirstByte=0, partLastByte=MiB - 1,
                            layerPartBlob=data[:MiB])
    ecr_b.upload_layer_part(repositoryName="parts", uploadId=up, partFirstByte=MiB, partLastByte=len(data) - 1,
                            layerPartBlob=data[MiB:])
    # The first part, under 5 MiB and not the last, was seen by node A; B refuses.
    with pytest.raises(ecr_b.exceptions.LayerPartTooSmallException):
        ecr_b.complete_layer_upload(repositoryName="parts", uploadId=up, layerDigests=[sha256(data)])
    # One part is fine whatever its size, finished on the other node.
    up = ecr_b.initiate_layer_upload(repositoryName="parts")["uploadId"]
    ecr_b.upload_layer_part(repositoryName="parts", uploadId=up, partFirstByte=0, partLastByte=len(data) - 1,
                            layerPartBlob=data)
    done = ecr_a.complete_layer_upload(repositoryName="parts", uploadId=up, layerDigests=[sha256(data)])
    assert done["layerDigest"] == sha256(data)
