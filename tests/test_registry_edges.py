"""Edge cases found in review: huge and duplicated reference lists, control characters,
guarded deletes, chunk ranges on PUT, status during an in-flight PATCH, one server per
data directory. Each must get a 4xx with the right code, never a 500."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from ocihelpers import (
    OCI_CONFIG,
    OCI_LAYER,
    Registry,
    build_index,
    config_bytes,
    descriptor,
    image_manifest_dict,
    json_bytes,
    push_image,
    push_manifest,
    put_manifest,
    random_digest,
    sha256,
    start_upload,
    unique_name,
    upload_blob,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def reg(berth):
    return Registry(berth.url, auth=berth.registry_auth())


@pytest.fixture
def repo(berth):
    name = unique_name("edge")
    berth.create_repository(name)
    return name


def error_code(r) -> str:
    return r.json()["errors"][0]["code"]


def test_manifest_with_thousands_of_duplicate_layers_is_stored(reg, repo):
    cfg = config_bytes()
    layer = os.urandom(64)
    upload_blob(reg, repo, cfg)
    upload_blob(reg, repo, layer)
    m = image_manifest_dict(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)] * 9000)
    body = json_bytes(m)
    r = put_manifest(reg, repo, "dup", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert reg.get(f"/v2/{repo}/manifests/dup", headers={"Accept": OCI_MANIFEST}).content == body


def test_manifest_with_thousands_of_missing_layers_lists_them(reg, repo):
    cfg = config_bytes()
    upload_blob(reg, repo, cfg)
    missing = [random_digest() for _ in range(3000)]
    layers = [{"mediaType": OCI_LAYER, "digest": d, "size": 1} for d in missing]
    r = put_manifest(reg, repo, "many", json_bytes(image_manifest_dict(descriptor(OCI_CONFIG, cfg), layers)), OCI_MANIFEST)
    assert r.status_code == 400, r.text
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert missing[0] in r.json()["errors"][0]["message"] and missing[-1] in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/v2/{repo}/tags/list?last=%00", "/v2/_catalog?last=%00", "/v2/{repo}/tags/list?last=a%00b"])
def test_control_characters_in_last_are_rejected(reg, repo, path):
    r = reg.get(path.format(repo=repo))
    assert r.status_code == 400, r.text
    assert error_code(r) in ("TAG_INVALID", "NAME_INVALID")


def test_control_characters_in_artifact_type_are_rejected(reg, repo):
    cfg = config_bytes()
    upload_blob(reg, repo, cfg)
    m = image_manifest_dict(descriptor(OCI_CONFIG, cfg), [], artifactType="application/x\u0000y")
    r = put_manifest(reg, repo, "nul", json_bytes(m), OCI_MANIFEST)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID", r.text


def test_bad_page_size_is_a_pagination_error(reg, repo):
    r = reg.get(f"/v2/{repo}/tags/list?n=abc")
    assert r.status_code == 400 and error_code(r) == "PAGINATION_NUMBER_INVALID"


@pytest.mark.parametrize("spec", ["bytes=5-4", "bytes=500-0", "bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range_is_416_with_the_size(reg, repo, spec):
    # RFC 9110 allows ignoring an inverted range; Berth answers it explicitly, as the
    # conformance suites expect.
    data = os.urandom(100)
    d = upload_blob(reg, repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": spec})
    assert r.status_code == 416, (spec, r.status_code)
    assert r.headers["Content-Range"] == "bytes */100"
    # A satisfiable one still works, and a range of another unit is ignored.
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=98-500"})
    assert r.status_code == 206 and r.content == data[98:]
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "items=1-2"})
    assert r.status_code == 200 and r.content == data


def test_referenced_layer_cannot_be_deleted_until_its_image_is(reg, repo):
    m = push_image(reg, repo, "v1")
    layer = json.loads(m.body)["layers"][0]["digest"]
    r = reg.delete(f"/v2/{repo}/blobs/{layer}")
    assert r.status_code == 409 and error_code(r) == "UNSUPPORTED", r.text
    assert reg.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
    assert reg.delete(f"/v2/{repo}/manifests/{m.digest}").status_code == 202
    assert reg.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
    assert reg.head(f"/v2/{repo}/blobs/{layer}").status_code == 404


def test_child_of_an_index_cannot_be_deleted_until_the_index_is(reg, repo):
    child = push_image(reg, repo)
    index = push_manifest(reg, repo, "multi", build_index([child]))
    r = reg.delete(f"/v2/{repo}/manifests/{child.digest}")
    assert r.status_code == 409 and error_code(r) == "UNSUPPORTED", r.text
    assert reg.get(f"/v2/{repo}/manifests/{child.digest}", headers={"Accept": child.media_type}).status_code == 200
    assert reg.delete(f"/v2/{repo}/manifests/{index.digest}").status_code == 202
    assert reg.delete(f"/v2/{repo}/manifests/{child.digest}").status_code == 202


def test_final_chunk_at_the_wrong_offset_is_refused(reg, repo):
    data = os.urandom(2000)
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.patch(loc, data=data[:1000], headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    loc = r.headers["Location"]
    # Replaying the first chunk as the final one must not corrupt the upload.
    r = reg.put(f"{loc}?digest={sha256(data)}", data=data[:1000],
                headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"})
    assert r.status_code == 416, r.text
    assert r.headers["Range"] == "0-999"
    r = reg.put(f"{loc}?digest={sha256(data)}", data=data[1000:],
                headers={"Content-Range": "1000-1999", "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert reg.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_chunk_whose_length_disagrees_with_its_range_is_refused(reg, repo):
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.patch(loc, data=b"x" * 10, headers={"Content-Range": "0-19", "Content-Type": "application/octet-stream"})
    assert r.status_code == 416, r.text
    assert r.headers["Range"] == "0-0"
    assert reg.get(loc).headers["Range"] == "0-0", "nothing was stored"


def test_status_answers_while_a_patch_is_streaming(berth, reg, repo):
    loc = start_upload(reg, repo).headers["Location"]
    conn = socket.create_connection(("127.0.0.1", berth.port), timeout=30)
    try:
        conn.sendall(
            (f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1:{berth.port}\r\n"
             f"Authorization: {berth.basic_auth_header()}\r\n"
             "Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n").encode()
            + b"y" * 100_000
        )
        # While that body is still open, a status request must answer promptly.
        r = reg.get(loc, timeout=10)
        assert r.status_code == 204
        assert r.headers["Docker-Upload-UUID"] == loc.rsplit("/", 1)[1]
    finally:
        conn.close()


def test_a_second_server_on_the_same_data_dir_is_refused(berth, berth_bin):
    r = subprocess.run(
        [str(berth_bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(berth.data_dir)],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode != 0
    assert "another `berth serve` is using the data directory" in r.stderr
    assert reg_ping(berth)


def reg_ping(berth) -> bool:
    return Registry(berth.url, auth=berth.registry_auth()).get("/v2/").status_code == 200
