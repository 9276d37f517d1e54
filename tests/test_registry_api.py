"""HTTP-level conformance tests for Berth's registry (OCI Distribution v1.1, as ECR behaves).

The contract is docs/test-contract.md; details it leaves open follow the OCI
Distribution Spec v1.1 and shared/spec/ecr-api.md section 5. Every test uses repositories
with unique names and random blob contents, so it works whether the `berth`
fixture is shared between tests or started per test. Tests that need an exact
view of a whole registry (the catalog) or a restart start their own server
with `berth_factory`, or use a registry (account, region) of their own via
host routing.

Sections: ping and health; blobs; uploads; mounts; repositories and names;
manifests; content negotiation; tags/list; _catalog; referrers; host routing;
persistence; robustness.
"""

import hashlib
import http.client
import json
import os
import re
import socket
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from ocihelpers import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_SHA256,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Manifest,
    MiB,
    Registry,
    build_artifact,
    build_image,
    build_index,
    chunks,
    config_bytes,
    describe,
    descriptor,
    image_manifest_dict,
    json_bytes,
    path_of,
    push_image,
    push_manifest,
    put_manifest,
    random_digest,
    sha256,
    sha512,
    start_upload,
    unique_name,
    upload_blob,
)

OTHER_ACCOUNT = "111122223333"
OTHER_REGION = "eu-west-1"
MANIFEST_LIMIT = 4 * MiB
NOT_FOUND_MESSAGE = "Requested image not found"


# =====================================================================================
# module helpers
# =====================================================================================


def assert_api_version(resp):
    assert resp.headers.get("Docker-Distribution-Api-Version") == "registry/2.0", describe(resp)


def assert_status(resp, status):
    assert resp.status_code == status, describe(resp)
    assert_api_version(resp)


def media_type(resp):
    """Content-Type without parameters."""
    return resp.headers.get("Content-Type", "").split(";")[0].strip()


def assert_error(resp, status, code, message=None):
    """An OCI error: status, JSON body {"errors":[{"code","message"}]}, API version header.

    `code` may be a set when the contract allows several codes. HEAD errors carry no body.
    """
    assert resp.status_code == status, describe(resp)
    assert_api_version(resp)
    if resp.request.method == "HEAD":
        assert resp.content == b"", describe(resp)
        return
    assert media_type(resp) == "application/json", describe(resp)
    body = resp.json()
    assert isinstance(body.get("errors"), list) and body["errors"], describe(resp)
    first = body["errors"][0]
    assert isinstance(first.get("message"), str), describe(resp)
    codes = code if isinstance(code, (set, frozenset)) else {code}
    assert first.get("code") in codes, describe(resp)
    if message is not None:
        assert first["message"] == message, describe(resp)


def name_unknown(name, account):
    return f"The repository with name '{name}' does not exist in the registry with id '{account}'"


def layers_missing(digests, name, account):
    return (
        f"Layers with digests '[{', '.join(digests)}]' required for pushing image into "
        f"repository with name '{name}' in the registry with id '{account}' do not exist"
    )


LAYERS_MISSING_RE = re.compile(
    r"Layers with digests '\[(?P<digests>[^\]]*)\]' required for pushing image into "
    r"repository with name '(?P<name>[^']*)' in the registry with id '(?P<account>\d{12})' "
    r"do not exist"
)


def range_end(resp):
    """Last byte offset from an upload `Range: 0-N` header."""
    m = re.fullmatch(r"0-(\d+)", resp.headers.get("Range", ""))
    assert m, describe(resp)
    return int(m.group(1))


def upload_path(name, upload_id):
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def assert_upload_response(resp, status, name, upload_id, stored):
    """A 202 (POST/PATCH) or 204 (GET) upload response for `stored` bytes so far."""
    assert_status(resp, status)
    assert resp.headers.get("Docker-Upload-UUID") == upload_id, describe(resp)
    assert path_of(resp.headers.get("Location", "")) == upload_path(name, upload_id), describe(resp)
    assert resp.headers.get("Range") == f"0-{max(stored - 1, 0)}", describe(resp)


def assert_blob_created(resp, name, digest):
    assert_status(resp, 201)
    assert path_of(resp.headers.get("Location", "")) == f"/v2/{name}/blobs/{digest}", describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == digest, describe(resp)


def assert_blob_content(reg, name, digest, data):
    r = reg.get(f"/v2/{name}/blobs/{digest}")
    assert_status(r, 200)
    assert r.content == data, f"blob content differs ({len(r.content)} vs {len(data)} bytes)"
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert r.headers.get("Content-Length") == str(len(data)), describe(r)


def assert_blob_absent(reg, name, digest):
    r = reg.head(f"/v2/{name}/blobs/{digest}")
    assert r.status_code == 404, describe(r)
    assert r.content == b""
    r = reg.get(f"/v2/{name}/blobs/{digest}")
    assert_error(r, 404, "BLOB_UNKNOWN")


def assert_manifest_served(reg, name, ref, m, headers=None):
    """GET and HEAD of `ref` serve `m` byte for byte with its stored media type."""
    r = reg.get(f"/v2/{name}/manifests/{ref}", headers=headers)
    assert_status(r, 200)
    assert r.content == m.body, describe(r)
    assert r.headers.get("Content-Type") == m.media_type, describe(r)
    assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)
    assert r.headers.get("Content-Length") == str(m.size), describe(r)
    h = reg.head(f"/v2/{name}/manifests/{ref}", headers=headers)
    assert_status(h, 200)
    assert h.content == b""
    assert h.headers.get("Content-Type") == m.media_type, describe(h)
    assert h.headers.get("Docker-Content-Digest") == m.digest, describe(h)
    assert h.headers.get("Content-Length") == str(m.size), describe(h)


def assert_manifest_absent(reg, name, ref):
    assert_error(reg.get(f"/v2/{name}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN", NOT_FOUND_MESSAGE)
    h = reg.head(f"/v2/{name}/manifests/{ref}")
    assert h.status_code == 404, describe(h)
    assert h.content == b""


def next_link(resp):
    """The target of a `Link: <...>; rel="next"` header, or None when absent."""
    link = resp.headers.get("Link")
    if link is None:
        return None
    m = re.fullmatch(r'<([^>]+)>;\s*rel="next"', link.strip())
    assert m, f"malformed Link header {link!r}"
    return m.group(1)


def assert_next_link(resp, path, n, last):
    target = next_link(resp)
    assert target is not None, describe(resp)
    parts = urlsplit(target)
    assert parts.path == path, target
    assert parse_qs(parts.query) == {"n": [str(n)], "last": [last]}, target
    return target


def tags_of(reg, name, **params):
    r = reg.get(f"/v2/{name}/tags/list", params=params or None)
    assert_status(r, 200)
    body = r.json()
    assert body["name"] == name, describe(r)
    return body["tags"], r


def catalog_all(reg, n=None):
    """Every repository of the registry, following Link headers."""
    out = []
    r = reg.get("/v2/_catalog", params={"n": n} if n else None)
    for _ in range(10_000):
        assert_status(r, 200)
        out.extend(r.json()["repositories"])
        target = next_link(r)
        if target is None:
            return out
        r = reg.get(target)
    raise AssertionError("catalog pagination does not end")


def create_repo_in(server, name, account=None, region=None, check=True):
    """`berth admin create-repository` against `server`'s store, in any registry."""
    args = ["create-repository", name, "--data-dir", str(server.data_dir)]
    metadata = getattr(server, "metadata_url", None)
    if metadata:
        args += ["--metadata", metadata]
    if account:
        args += ["--account-id", account]
    if region:
        args += ["--region", region]
    return server.admin(*args, check=check)


def registry_for(server, account, region, with_port=True):
    """A client whose Host header selects the registry (account, region)."""
    host = server.registry_host(account=account, region=region)
    if not with_port:
        host = host.rsplit(":", 1)[0]
    return Registry(server.url, host=host, auth=server.registry_auth(region=region, account=account))


def raw_request(server, method, path, headers=(), body=None, host=None):
    """One request through http.client, so header lists (e.g. two Accept headers)
    go on the wire exactly as given and nothing is added but Host."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        if not any(k.lower() == "authorization" for k, _ in headers):
            conn.putheader("Authorization", server.basic_auth_header())
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def assert_alive(reg):
    r = reg.get("/v2/")
    assert_status(r, 200)


# =====================================================================================
# fixtures (module-local; the server fixtures come from conftest.py)
# =====================================================================================


@pytest.fixture
def reg(berth):
    return Registry(berth.url, auth=berth.registry_auth())


@pytest.fixture
def mounting(berth):
    """Cross-repository mounts happen only with the BLOB_MOUNTING account setting on (ECR's
    default is off)."""
    berth.ecr().put_account_setting(name="BLOB_MOUNTING", value="ENABLED")


@pytest.fixture
def new_repo(berth):
    """Factory: create a repository with a fresh name in the default registry."""

    def make(prefix="repo"):
        name = unique_name(prefix)
        berth.create_repository(name)
        return name

    return make


@pytest.fixture
def repo(new_repo):
    return new_repo()


# =====================================================================================
# ping and health
# =====================================================================================


def test_ping_returns_empty_json_object(reg):
    r = reg.get("/v2/")
    assert_status(r, 200)
    assert r.json() == {}


def test_ping_head(reg):
    r = reg.head("/v2/")
    assert_status(r, 200)
    assert r.content == b""


def test_healthz(reg):
    r = reg.get("/healthz")
    assert r.status_code == 200, describe(r)


# =====================================================================================
# blobs: HEAD / GET / Range / DELETE
# =====================================================================================


def test_blob_head_present(reg, repo):
    data = os.urandom(1000)
    d = upload_blob(reg, repo, data)
    r = reg.head(f"/v2/{repo}/blobs/{d}")
    assert_status(r, 200)
    assert r.headers.get("Content-Length") == "1000"
    assert r.headers.get("Docker-Content-Digest") == d
    assert media_type(r) == "application/octet-stream"
    assert r.headers.get("Accept-Ranges") == "bytes"
    assert r.content == b""


def test_blob_get_present(reg, repo):
    data = os.urandom(5000)
    d = upload_blob(reg, repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}")
    assert_status(r, 200)
    assert r.content == data
    assert r.headers.get("Content-Length") == "5000"
    assert r.headers.get("Docker-Content-Digest") == d
    assert media_type(r) == "application/octet-stream"
    assert r.headers.get("Accept-Ranges") == "bytes"


def test_blob_head_absent_is_404_without_body(reg, repo):
    r = reg.head(f"/v2/{repo}/blobs/{random_digest()}")
    assert_status(r, 404)
    assert r.content == b""


def test_blob_get_absent_is_blob_unknown(reg, repo):
    assert_error(reg.get(f"/v2/{repo}/blobs/{random_digest()}"), 404, "BLOB_UNKNOWN")


def test_blob_uploaded_to_one_repository_is_not_visible_in_another(reg, new_repo):
    """A digest alone grants nothing: the blob must be linked to the repository asked."""
    a, b = new_repo("owner"), new_repo("other")
    data = os.urandom(300)
    d = upload_blob(reg, a, data)
    assert_blob_content(reg, a, d, data)
    assert_blob_absent(reg, b, d)
    assert_error(reg.delete(f"/v2/{b}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    assert_blob_content(reg, a, d, data)


MALFORMED_DIGESTS = {
    "too-short": "sha256:abc",
    "not-hex": "sha256:" + "g" * 64,
    "no-separator": "sha256" + "a" * 64,
    "63-hex": "sha256:" + "a" * 63,
    "65-hex": "sha256:" + "a" * 65,
    "sha512-of-64-hex": "sha512:" + "a" * 64,
    "unsupported-algorithm": "md5:" + "a" * 32,
    "no-algorithm": "notadigest",
}


@pytest.mark.parametrize("bad", list(MALFORMED_DIGESTS.values()), ids=list(MALFORMED_DIGESTS))
def test_blob_malformed_digest_is_digest_invalid(reg, repo, bad):
    assert_error(reg.get(f"/v2/{repo}/blobs/{bad}"), 400, "DIGEST_INVALID")
    h = reg.head(f"/v2/{repo}/blobs/{bad}")
    assert_status(h, 400)
    assert h.content == b""


def test_blob_delete_malformed_digest_is_digest_invalid(reg, repo):
    assert_error(reg.delete(f"/v2/{repo}/blobs/sha256:xyz"), 400, "DIGEST_INVALID")


RANGE_OK = [
    # (Range header, first byte, last byte) for a 1024-byte blob
    ("bytes=10-19", 10, 19),
    ("bytes=0-0", 0, 0),
    ("bytes=1023-1023", 1023, 1023),
    ("bytes=1000-", 1000, 1023),  # open range
    ("bytes=0-", 0, 1023),
    ("bytes=-24", 1000, 1023),  # suffix range
    ("bytes=-5000", 0, 1023),  # suffix longer than the blob: whole blob
    ("bytes=1000-5000", 1000, 1023),  # last-pos past the end is clamped
]


@pytest.mark.parametrize("header,first,last", RANGE_OK)
def test_blob_range_request(reg, repo, header, first, last):
    data = os.urandom(1024)
    d = upload_blob(reg, repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": header})
    assert_status(r, 206)
    assert r.headers.get("Content-Range") == f"bytes {first}-{last}/1024", describe(r)
    assert r.content == data[first : last + 1]
    assert r.headers.get("Content-Length") == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=2000-3000", "bytes=1024-1024"])
def test_blob_unsatisfiable_range_is_416(reg, repo, header):
    data = os.urandom(1024)
    d = upload_blob(reg, repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": header})
    assert_status(r, 416)
    if "Content-Range" in r.headers:  # RFC 9110 SHOULD
        assert r.headers["Content-Range"] == "bytes */1024"
    assert_alive(reg)


def test_blob_delete_unlinks_only_in_that_repository(reg, new_repo):
    a, b = new_repo("a"), new_repo("b")
    data = os.urandom(2048)
    d = upload_blob(reg, a, data)
    assert upload_blob(reg, b, data) == d
    r = reg.delete(f"/v2/{a}/blobs/{d}")
    assert_status(r, 202)
    assert_blob_absent(reg, a, d)
    assert_blob_content(reg, b, d, data)


def test_blob_delete_twice_is_blob_unknown(reg, repo):
    d = upload_blob(reg, repo, os.urandom(10))
    assert_status(reg.delete(f"/v2/{repo}/blobs/{d}"), 202)
    assert_error(reg.delete(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")


def test_blob_delete_absent_is_blob_unknown(reg, repo):
    assert_error(reg.delete(f"/v2/{repo}/blobs/{random_digest()}"), 404, "BLOB_UNKNOWN")


def test_blob_can_be_uploaded_again_after_delete(reg, repo):
    data = os.urandom(100)
    d = upload_blob(reg, repo, data)
    assert_status(reg.delete(f"/v2/{repo}/blobs/{d}"), 202)
    assert_blob_absent(reg, repo, d)
    assert upload_blob(reg, repo, data) == d
    assert_blob_content(reg, repo, d, data)


def test_sha512_blob_monolithic_end_to_end(reg, repo):
    data = os.urandom(4096)
    d = sha512(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, data=data)
    assert_blob_created(r, repo, d)
    h = reg.head(f"/v2/{repo}/blobs/{d}")
    assert_status(h, 200)
    assert h.headers.get("Docker-Content-Digest") == d
    assert h.headers.get("Content-Length") == "4096"
    assert_blob_content(reg, repo, d, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=100-199"})
    assert_status(r, 206)
    assert r.content == data[100:200]
    assert_status(reg.delete(f"/v2/{repo}/blobs/{d}"), 202)
    assert_blob_absent(reg, repo, d)


def test_sha512_blob_chunked_end_to_end(reg, repo):
    data = os.urandom(3000)
    d = sha512(data)
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.patch(loc, data=data[:1000], headers={"Content-Range": "0-999"})
    assert_status(r, 202)
    r = reg.put(r.headers["Location"], params={"digest": d}, data=data[1000:])
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_sha512_digest_mismatch_is_digest_invalid(reg, repo):
    data = os.urandom(100)
    wrong = sha512(data + b"x")
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, data=data)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_blob_absent(reg, repo, wrong)
    assert_blob_absent(reg, repo, sha512(data))


# =====================================================================================
# uploads
# =====================================================================================


def test_upload_post_starts_a_session(reg, repo):
    r = reg.post(f"/v2/{repo}/blobs/uploads/")
    assert_status(r, 202)
    upload_id = r.headers.get("Docker-Upload-UUID")
    assert upload_id, describe(r)
    assert_upload_response(r, 202, repo, upload_id, 0)
    assert r.headers.get("Range") == "0-0"


def test_upload_sessions_are_distinct(reg, repo):
    a = start_upload(reg, repo).headers["Docker-Upload-UUID"]
    b = start_upload(reg, repo).headers["Docker-Upload-UUID"]
    assert a != b


def test_upload_streamed_patch_then_put(reg, repo):
    """Docker's push: POST, one streamed PATCH (chunked transfer encoding), PUT ?digest."""
    data = os.urandom(3 * MiB + 123)  # above axum's default 2 MB body limit
    d = sha256(data)
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.patch(
        r.headers["Location"],
        data=chunks(data),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_upload_response(r, 202, repo, upload_id, len(data))
    assert_blob_absent(reg, repo, d)  # not visible before the PUT
    r = reg.put(r.headers["Location"], params={"digest": d})
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_two_patches_without_content_range_append(reg, repo):
    data = os.urandom(70_000)
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.patch(r.headers["Location"], data=chunks(data[:30_000], 4096))
    assert_upload_response(r, 202, repo, upload_id, 30_000)
    r = reg.patch(r.headers["Location"], data=chunks(data[30_000:], 4096))
    assert_upload_response(r, 202, repo, upload_id, 70_000)
    r = reg.put(r.headers["Location"], params={"digest": sha256(data)})
    assert_blob_created(r, repo, sha256(data))
    assert_blob_content(reg, repo, sha256(data), data)


def test_upload_monolithic_post_with_digest(reg, repo):
    data = os.urandom(10_000)
    d = sha256(data)
    r = reg.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": d},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_monolithic_post_large_streamed_body(reg, repo):
    data = os.urandom(6 * MiB)
    d = sha256(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, data=chunks(data, MiB))
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_monolithic_post_digest_mismatch(reg, repo):
    data = os.urandom(500)
    claimed = sha256(b"something else " + data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, data=data)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_blob_absent(reg, repo, claimed)
    assert_blob_absent(reg, repo, sha256(data))


def test_upload_monolithic_post_malformed_digest(reg, repo):
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:nothex"}, data=b"abc")
    assert_error(r, 400, "DIGEST_INVALID")


def test_upload_post_then_single_put_with_body(reg, repo):
    data = os.urandom(2000)
    d = sha256(data)
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.put(loc, params={"digest": d}, data=data, headers={"Content-Type": "application/octet-stream"})
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_put_carries_final_chunk(reg, repo):
    data = os.urandom(5000)
    d = sha256(data)
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.patch(r.headers["Location"], data=data[:3000])
    assert_upload_response(r, 202, repo, upload_id, 3000)
    r = reg.put(r.headers["Location"], params={"digest": d}, data=data[3000:])
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_put_final_chunk_with_content_range(reg, repo):
    data = os.urandom(5000)
    d = sha256(data)
    r = start_upload(reg, repo)
    r = reg.patch(r.headers["Location"], data=data[:3000], headers={"Content-Range": "0-2999"})
    assert_status(r, 202)
    r = reg.put(
        r.headers["Location"],
        params={"digest": d},
        data=data[3000:],
        headers={"Content-Range": "3000-4999"},
    )
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_chunked_patches_with_content_range(reg, repo):
    data = os.urandom(3 * 40_000)
    d = sha256(data)
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    for start in range(0, len(data), 40_000):
        end = start + 40_000 - 1
        r = reg.patch(
            r.headers["Location"],
            data=data[start : end + 1],
            headers={"Content-Range": f"{start}-{end}", "Content-Type": "application/octet-stream"},
        )
        assert_upload_response(r, 202, repo, upload_id, end + 1)
    r = reg.put(r.headers["Location"], params={"digest": d})
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_out_of_order_chunk_is_416_with_stored_range(reg, repo):
    data = os.urandom(200)
    d = sha256(data)
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.patch(r.headers["Location"], data=data[:100], headers={"Content-Range": "0-99"})
    assert_upload_response(r, 202, repo, upload_id, 100)
    loc = r.headers["Location"]
    # a gap: starts after the current size
    r = reg.patch(loc, data=data[150:], headers={"Content-Range": "150-199"})
    assert_status(r, 416)
    assert r.headers.get("Range") == "0-99", describe(r)
    # a rewind: starts before the current size
    r = reg.patch(loc, data=data[50:150], headers={"Content-Range": "50-149"})
    assert_status(r, 416)
    assert r.headers.get("Range") == "0-99", describe(r)
    # nothing of the rejected chunks was stored; the upload continues where it was
    r = reg.get(loc)
    assert_upload_response(r, 204, repo, upload_id, 100)
    r = reg.patch(r.headers["Location"], data=data[100:], headers={"Content-Range": "100-199"})
    assert_upload_response(r, 202, repo, upload_id, 200)
    r = reg.put(r.headers["Location"], params={"digest": d})
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, data)


def test_upload_first_chunk_not_starting_at_zero_is_416(reg, repo):
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.patch(loc, data=b"x" * 10, headers={"Content-Range": "5-14"})
    assert_status(r, 416)
    assert r.headers.get("Range") == "0-0", describe(r)


def test_upload_status(reg, repo):
    r = start_upload(reg, repo)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.get(r.headers["Location"])
    assert_upload_response(r, 204, repo, upload_id, 0)
    r = reg.patch(r.headers["Location"], data=os.urandom(500))
    assert_status(r, 202)
    r = reg.get(r.headers["Location"])
    assert_upload_response(r, 204, repo, upload_id, 500)
    assert r.content == b""


def test_upload_cancel(reg, repo):
    data = os.urandom(1000)
    d = sha256(data)
    r = reg.patch(start_upload(reg, repo).headers["Location"], data=data)
    assert_status(r, 202)
    loc = r.headers["Location"]
    r = reg.delete(loc)
    assert_status(r, 204)
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch(loc, data=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.put(loc, params={"digest": d}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_blob_absent(reg, repo, d)


def test_upload_digest_mismatch_discards_upload(reg, repo):
    data = os.urandom(1000)
    wrong = sha256(b"not the data")
    r = reg.patch(start_upload(reg, repo).headers["Location"], data=data)
    assert_status(r, 202)
    loc = r.headers["Location"]
    r = reg.put(loc, params={"digest": wrong})
    assert_error(r, 400, "DIGEST_INVALID")
    assert_blob_absent(reg, repo, wrong)
    assert_blob_absent(reg, repo, sha256(data))
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_put_without_digest_is_digest_invalid(reg, repo):
    data = os.urandom(100)
    r = reg.patch(start_upload(reg, repo).headers["Location"], data=data)
    assert_status(r, 202)
    assert_error(reg.put(r.headers["Location"]), 400, "DIGEST_INVALID")
    assert_blob_absent(reg, repo, sha256(data))


def test_upload_put_with_malformed_digest_is_digest_invalid(reg, repo):
    loc = start_upload(reg, repo).headers["Location"]
    assert_error(reg.put(loc, params={"digest": "sha256:123"}, data=b"abc"), 400, "DIGEST_INVALID")


def _upload_request(reg, method, path):
    if method == "PATCH":
        return reg.patch(path, data=b"data")
    if method == "PUT":
        return reg.put(path, params={"digest": sha256(b"data")}, data=b"data")
    return reg.request(method, path)


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize("upload_id", ["uuid", "not-a-uuid"])
def test_upload_unknown_id_is_blob_upload_unknown(reg, repo, method, upload_id):
    upload_id = str(uuid.uuid4()) if upload_id == "uuid" else "not-a-uuid"
    r = _upload_request(reg, method, upload_path(repo, upload_id))
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_upload_id_is_bound_to_its_repository(reg, new_repo, method):
    a, b = new_repo("owner"), new_repo("intruder")
    data = os.urandom(10)
    r = start_upload(reg, a)
    upload_id = r.headers["Docker-Upload-UUID"]
    r = reg.patch(r.headers["Location"], data=data)
    assert_status(r, 202)
    loc = r.headers["Location"]
    # the same upload URL with the other repository's name
    foreign = loc.replace(f"/v2/{a}/blobs/uploads/", f"/v2/{b}/blobs/uploads/", 1)
    assert path_of(foreign) == upload_path(b, upload_id)
    r = _upload_request(reg, method, foreign)
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    # the session in its own repository is untouched and still completes
    r = reg.get(loc)
    assert_upload_response(r, 204, a, upload_id, 10)
    r = reg.put(r.headers["Location"], params={"digest": sha256(data)})
    assert_blob_created(r, a, sha256(data))
    assert_blob_absent(reg, b, sha256(data))


def test_zero_byte_blob_monolithic(reg, repo):
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": EMPTY_SHA256}, data=b"")
    assert_blob_created(r, repo, EMPTY_SHA256)
    h = reg.head(f"/v2/{repo}/blobs/{EMPTY_SHA256}")
    assert_status(h, 200)
    assert h.headers.get("Content-Length") == "0"
    assert_blob_content(reg, repo, EMPTY_SHA256, b"")


def test_zero_byte_blob_post_then_put(reg, repo):
    loc = start_upload(reg, repo).headers["Location"]
    r = reg.put(loc, params={"digest": EMPTY_SHA256})
    assert_blob_created(r, repo, EMPTY_SHA256)
    assert_blob_content(reg, repo, EMPTY_SHA256, b"")


# =====================================================================================
# cross-repository mounts
# =====================================================================================


def test_mount_is_a_normal_upload_while_blob_mounting_is_off(reg, berth, new_repo):
    """ECR's default: BLOB_MOUNTING is DISABLED, and a mount request starts an upload."""
    assert berth.ecr().get_account_setting(name="BLOB_MOUNTING")["value"] == "DISABLED"
    src, dst = new_repo("src"), new_repo("dst")
    data = os.urandom(77)
    d = upload_blob(reg, src, data)
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": src})
    assert_status(r, 202)
    assert_blob_absent(reg, dst, d)
    r = reg.put(r.headers["Location"], params={"digest": d}, data=data)
    assert_blob_created(r, dst, d)


def test_mount_from_repository_that_has_the_blob(reg, new_repo, mounting):
    src, dst = new_repo("src"), new_repo("dst")
    data = os.urandom(777)
    d = upload_blob(reg, src, data)
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": src})
    assert_blob_created(r, dst, d)
    assert_blob_content(reg, dst, d, data)


def test_mounted_blob_survives_delete_in_source(reg, new_repo, mounting):
    src, dst = new_repo("src"), new_repo("dst")
    data = os.urandom(50)
    d = upload_blob(reg, src, data)
    assert_status(reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": src}), 201)
    assert_status(reg.delete(f"/v2/{src}/blobs/{d}"), 202)
    assert_blob_absent(reg, src, d)
    assert_blob_content(reg, dst, d, data)


def test_mount_from_repository_without_the_blob_starts_an_upload(reg, new_repo, mounting):
    """`from` is honoured: the blob exists elsewhere in the registry, but not in `from`."""
    holder, src, dst = new_repo("holder"), new_repo("src"), new_repo("dst")
    data = os.urandom(64)
    d = upload_blob(reg, holder, data)
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": src})
    assert_status(r, 202)
    upload_id = r.headers.get("Docker-Upload-UUID")
    assert upload_id, describe(r)
    assert path_of(r.headers["Location"]) == upload_path(dst, upload_id)
    assert_blob_absent(reg, dst, d)
    # it is a normal upload session
    r = reg.put(r.headers["Location"], params={"digest": d}, data=data)
    assert_blob_created(r, dst, d)
    assert_blob_content(reg, dst, d, data)


def test_mount_from_nonexistent_repository_starts_an_upload(reg, new_repo, mounting):
    src, dst = new_repo("src"), new_repo("dst")
    d = upload_blob(reg, src, os.urandom(64))
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": unique_name("nosuch")})
    assert_status(r, 202)
    assert r.headers.get("Docker-Upload-UUID"), describe(r)
    assert_blob_absent(reg, dst, d)


def test_mount_without_from_finds_blob_in_same_registry(reg, new_repo, mounting):
    src, dst = new_repo("src"), new_repo("dst")
    data = os.urandom(99)
    d = upload_blob(reg, src, data)
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d})
    assert_blob_created(r, dst, d)
    assert_blob_content(reg, dst, d, data)


def test_mount_without_from_of_unknown_blob_starts_an_upload(reg, repo, mounting):
    d = random_digest()
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"mount": d})
    assert_status(r, 202)
    upload_id = r.headers.get("Docker-Upload-UUID")
    assert path_of(r.headers["Location"]) == upload_path(repo, upload_id)
    assert_blob_absent(reg, repo, d)


def test_mount_from_repository_with_slashes(reg, berth, new_repo, mounting):
    src = f"{unique_name('team')}/app/api"
    berth.create_repository(src)
    dst = new_repo("dst")
    data = os.urandom(123)
    d = upload_blob(reg, src, data)
    # params= percent-encodes the slashes in `from`, as docker does
    r = reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": src})
    assert_blob_created(r, dst, d)
    assert_blob_content(reg, dst, d, data)


# =====================================================================================
# repositories and names
# =====================================================================================


def _missing_repo_requests(reg, name, existing):
    d = random_digest()
    image = build_image(reg, existing)  # blobs exist, but in another repository
    return {
        "upload-start": lambda: reg.post(f"/v2/{name}/blobs/uploads/"),
        "upload-monolithic": lambda: reg.post(
            f"/v2/{name}/blobs/uploads/", params={"digest": sha256(b"x")}, data=b"x"
        ),
        "upload-mount": lambda: reg.post(
            f"/v2/{name}/blobs/uploads/", params={"mount": d, "from": existing}
        ),
        "blob-get": lambda: reg.get(f"/v2/{name}/blobs/{d}"),
        "blob-delete": lambda: reg.delete(f"/v2/{name}/blobs/{d}"),
        "manifest-put": lambda: put_manifest(reg, name, "latest", image.body, image.media_type),
        "manifest-get-tag": lambda: reg.get(f"/v2/{name}/manifests/latest"),
        "manifest-get-digest": lambda: reg.get(f"/v2/{name}/manifests/{d}"),
        "manifest-delete": lambda: reg.delete(f"/v2/{name}/manifests/{d}"),
        "tags-list": lambda: reg.get(f"/v2/{name}/tags/list"),
        "referrers": lambda: reg.get(f"/v2/{name}/referrers/{d}"),
    }


MISSING_REPO_CASES = [
    "upload-start",
    "upload-monolithic",
    "upload-mount",
    "blob-get",
    "blob-delete",
    "manifest-put",
    "manifest-get-tag",
    "manifest-get-digest",
    "manifest-delete",
    "tags-list",
    "referrers",
]


@pytest.mark.parametrize("case", MISSING_REPO_CASES)
def test_repository_never_created_is_name_unknown(reg, berth, repo, case):
    name = unique_name("never-created")
    r = _missing_repo_requests(reg, name, repo)[case]()
    assert_error(r, 404, "NAME_UNKNOWN", name_unknown(name, berth.account_id))


def test_repository_never_created_with_slashes_is_name_unknown(reg, berth):
    name = f"{unique_name('team')}/app/api"
    r = reg.post(f"/v2/{name}/blobs/uploads/")
    assert_error(r, 404, "NAME_UNKNOWN", name_unknown(name, berth.account_id))


@pytest.mark.parametrize("kind", ["blobs", "manifests"])
def test_head_on_repository_never_created_is_404_without_body(reg, kind):
    name = unique_name("never-created")
    ref = random_digest() if kind == "blobs" else "latest"
    r = reg.head(f"/v2/{name}/{kind}/{ref}")
    assert_status(r, 404)
    assert r.content == b""


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_upload_session_in_repository_never_created_is_404(reg, method):
    name = unique_name("never-created")
    r = _upload_request(reg, method, upload_path(name, str(uuid.uuid4())))
    assert_error(r, 404, {"NAME_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})


INVALID_NAMES = {
    "uppercase": "MyApp",
    "uppercase-component": "team/MyApp",
    "too-short": "a",
    "trailing-slash": "app/",
    "double-slash": "team//app",
    "too-long": "a" * 257,
    "leading-dash": "-app",
    "trailing-dash": "app-",
    "double-dot": "app..x",
    "triple-underscore": "app___x",
    "dot-underscore": "app._x",
    "component-leading-dot": "team/.app",
    "illegal-char": "app@x",
}


@pytest.mark.parametrize("name", list(INVALID_NAMES.values()), ids=list(INVALID_NAMES))
def test_invalid_repository_name_on_upload_is_name_invalid(reg, name):
    assert_error(reg.post(f"/v2/{name}/blobs/uploads/"), 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "endpoint",
    ["blobs/{d}", "manifests/latest", "manifests/{d}", "tags/list", "referrers/{d}"],
)
@pytest.mark.parametrize("name", ["MyApp", "a", "a" * 257], ids=["uppercase", "too-short", "too-long"])
def test_invalid_repository_name_on_other_endpoints_is_name_invalid(reg, name, endpoint):
    path = f"/v2/{name}/" + endpoint.format(d=random_digest())
    assert_error(reg.get(path), 400, "NAME_INVALID")


def test_invalid_repository_name_on_manifest_put_is_name_invalid(reg, repo):
    m = build_image(reg, repo)
    assert_error(put_manifest(reg, "MyApp", "v1", m.body, m.media_type), 400, "NAME_INVALID")


def test_name_of_256_characters_is_valid(reg, berth):
    name = "a" * 247 + "-" + os.urandom(4).hex()
    assert len(name) == 256
    berth.create_repository(name)
    data = os.urandom(10)
    d = upload_blob(reg, name, data)
    assert_blob_content(reg, name, d, data)
    tags, _ = tags_of(reg, name)
    assert tags == []


def test_name_of_2_characters_is_valid(reg, berth):
    name = os.urandom(1).hex()  # two hex characters: [a-z0-9]{2}
    create_repo_in(berth, name, check=False)  # check=False: may exist if the server is shared
    r = reg.post(f"/v2/{name}/blobs/uploads/")
    assert_status(r, 202)


@pytest.mark.parametrize("name", ["a--b", "a__b", "a.b_c-d", "a0/b-1/c__2/d.3"])
def test_names_allowed_by_the_ecr_pattern(reg, berth, name):
    name = f"{name}{os.urandom(3).hex()}"
    berth.create_repository(name)
    assert_status(reg.post(f"/v2/{name}/blobs/uploads/"), 202)


def test_repository_with_slashes_works_on_every_endpoint(reg, berth, new_repo, mounting):
    name = f"{unique_name('team')}/app/api"
    berth.create_repository(name)
    # uploads: POST, status, PATCH, PUT
    data = os.urandom(4000)
    d = sha256(data)
    r = start_upload(reg, name)
    upload_id = r.headers["Docker-Upload-UUID"]
    assert path_of(r.headers["Location"]) == upload_path(name, upload_id)
    r = reg.patch(r.headers["Location"], data=chunks(data, 1000))
    assert_upload_response(r, 202, name, upload_id, 4000)
    assert_upload_response(reg.get(r.headers["Location"]), 204, name, upload_id, 4000)
    assert_blob_created(reg.put(r.headers["Location"], params={"digest": d}), name, d)
    # blobs: HEAD, GET, Range
    assert_status(reg.head(f"/v2/{name}/blobs/{d}"), 200)
    assert_blob_content(reg, name, d, data)
    r = reg.get(f"/v2/{name}/blobs/{d}", headers={"Range": "bytes=0-9"})
    assert_status(r, 206)
    assert r.content == data[:10]
    # monolithic POST and cancel
    other = os.urandom(20)
    assert_blob_created(
        reg.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha256(other)}, data=other),
        name,
        sha256(other),
    )
    loc = start_upload(reg, name).headers["Location"]
    assert_status(reg.delete(loc), 204)
    # manifests, tags, referrers
    img = push_image(reg, name, "v1")
    assert_manifest_served(reg, name, "v1", img)
    assert_manifest_served(reg, name, img.digest, img)
    push_manifest(reg, name, "v2", img)
    tags, _ = tags_of(reg, name)
    assert tags == ["v1", "v2"]
    art = build_artifact(reg, name, img.as_descriptor())
    r = put_manifest(reg, name, art.digest, art.body, art.media_type)
    assert_status(r, 201)
    r = reg.get(f"/v2/{name}/referrers/{img.digest}")
    assert_status(r, 200)
    assert [m["digest"] for m in r.json()["manifests"]] == [art.digest]
    # mount from it, catalog lists it
    dst = new_repo("dst")
    assert_blob_created(
        reg.post(f"/v2/{dst}/blobs/uploads/", params={"mount": d, "from": name}), dst, d
    )
    assert name in catalog_all(reg)
    # deletes
    assert_status(reg.delete(f"/v2/{name}/manifests/v2"), 202)
    assert_status(reg.delete(f"/v2/{name}/manifests/{img.digest}"), 202)
    assert_manifest_absent(reg, name, "v1")
    assert_status(reg.delete(f"/v2/{name}/blobs/{d}"), 202)
    assert_blob_absent(reg, name, d)


@pytest.mark.parametrize("suffix", ["manifests/tags", "blobs/uploads", "tags/list", "referrers/x"])
def test_repository_names_containing_route_words(reg, berth, suffix):
    """Names are parsed from the right: route words inside a name are just components."""
    name = f"{unique_name('kw')}/{suffix}"
    berth.create_repository(name)
    data = os.urandom(30)
    r = start_upload(reg, name)
    upload_id = r.headers["Docker-Upload-UUID"]
    assert path_of(r.headers["Location"]) == upload_path(name, upload_id)
    assert_upload_response(reg.get(r.headers["Location"]), 204, name, upload_id, 0)
    assert_blob_created(
        reg.put(r.headers["Location"], params={"digest": sha256(data)}, data=data), name, sha256(data)
    )
    assert_blob_content(reg, name, sha256(data), data)
    img = push_image(reg, name, "latest")
    assert_manifest_served(reg, name, "latest", img)
    tags, _ = tags_of(reg, name)
    assert tags == ["latest"]
    r = reg.get(f"/v2/{name}/referrers/{img.digest}")
    assert_status(r, 200)
    assert r.json()["manifests"] == []


def test_create_on_push_creates_the_repository(berth_factory):
    srv = berth_factory(create_on_push=True)
    reg = Registry(srv.url, auth=srv.registry_auth())
    name = f"{unique_name('auto')}/svc"
    img = push_image(reg, name, "v1")
    assert_manifest_served(reg, name, "v1", img)
    tags, _ = tags_of(reg, name)
    assert tags == ["v1"]
    assert name in catalog_all(reg)
    # names are still validated
    assert_error(reg.post("/v2/Bad-Name/blobs/uploads/"), 400, "NAME_INVALID")


# =====================================================================================
# manifests
# =====================================================================================


def make_manifest(reg, repo, kind):
    """Push the prerequisites of a manifest of `kind` to `repo` and return it (not pushed)."""
    if kind == "docker-schema2":
        return build_image(reg, repo, docker=True, layers=2)
    if kind == "oci-manifest":
        return build_image(reg, repo, layers=2, annotations={"org.example.k": "v"})
    if kind == "oci-index":
        return build_index([push_image(reg, repo), push_image(reg, repo)])
    if kind == "docker-list":
        return build_index([push_image(reg, repo, docker=True), push_image(reg, repo, docker=True)], docker=True)
    if kind == "oci-artifact":
        subject = push_image(reg, repo)
        return build_artifact(
            reg, repo, subject.as_descriptor(), "application/vnd.example.sbom.v1", {"org.example.note": "n"}
        )
    if kind == "oci-index-with-subject":
        subject = push_image(reg, repo)
        return build_index(
            [push_image(reg, repo)],
            artifactType="application/vnd.example.bundle.v1",
            subject=subject.as_descriptor(),
        )
    raise ValueError(kind)


MANIFEST_KINDS = [
    "docker-schema2",
    "oci-manifest",
    "oci-index",
    "docker-list",
    "oci-artifact",
    "oci-index-with-subject",
]


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_manifest_put_get_head_by_tag_and_digest(reg, repo, kind):
    m = make_manifest(reg, repo, kind)
    r = put_manifest(reg, repo, "v1", m.body, m.media_type)
    assert_status(r, 201)
    assert path_of(r.headers.get("Location", "")) == f"/v2/{repo}/manifests/{m.digest}", describe(r)
    assert r.headers.get("Docker-Content-Digest") == m.digest
    if m.subject:
        assert r.headers.get("OCI-Subject") == m.subject, describe(r)
    else:
        assert "OCI-Subject" not in r.headers, describe(r)
    assert_manifest_served(reg, repo, "v1", m)
    assert_manifest_served(reg, repo, m.digest, m)


def test_manifest_bytes_are_never_reserialised(reg, repo):
    cfg, layer = config_bytes(), os.urandom(321)
    upload_blob(reg, repo, cfg)
    upload_blob(reg, repo, layer)
    body = (
        '{\n  "schemaVersion" : 2 ,\n\t"mediaType":"%s",\r\n'
        '  "layers":[ {"size":%d,  "digest":"%s","mediaType":"%s"} ],\n'
        '    "config": {"digest":"%s", "mediaType":"%s","size":%d},\n'
        '  "annotations":{"z":"1","a":"caf\\u00e9 \\u2603 \\/","m":"1.0e0","u":"\u00fc\u00df"}\n'
        "}\n\n"
    ) % (OCI_MANIFEST, len(layer), sha256(layer), OCI_LAYER, sha256(cfg), OCI_CONFIG, len(cfg))
    m = Manifest(body.encode("utf-8"), OCI_MANIFEST)
    r = put_manifest(reg, repo, "odd", m.body, m.media_type)
    assert_status(r, 201)
    assert r.headers.get("Docker-Content-Digest") == m.digest
    assert_manifest_served(reg, repo, "odd", m)
    assert_manifest_served(reg, repo, m.digest, m)


def test_manifest_put_by_digest_stores_untagged(reg, repo):
    m = build_image(reg, repo)
    r = put_manifest(reg, repo, m.digest, m.body, m.media_type)
    assert_status(r, 201)
    assert path_of(r.headers.get("Location", "")) == f"/v2/{repo}/manifests/{m.digest}"
    assert r.headers.get("Docker-Content-Digest") == m.digest
    assert_manifest_served(reg, repo, m.digest, m)
    tags, _ = tags_of(reg, repo)
    assert tags == []


def test_manifest_put_by_wrong_digest_is_digest_invalid(reg, repo):
    m = build_image(reg, repo)
    wrong = sha256(m.body + b" ")
    assert_error(put_manifest(reg, repo, wrong, m.body, m.media_type), 400, "DIGEST_INVALID")
    assert_manifest_absent(reg, repo, m.digest)
    assert_manifest_absent(reg, repo, wrong)


def test_manifest_put_by_malformed_digest_reference(reg, repo):
    m = build_image(reg, repo)
    r = put_manifest(reg, repo, "sha256:1234", m.body, m.media_type)
    assert_error(r, 400, {"DIGEST_INVALID", "TAG_INVALID"})


def test_manifest_with_sha512_layer(reg, repo):
    cfg, layer = config_bytes(), os.urandom(200)
    upload_blob(reg, repo, cfg)
    upload_blob(reg, repo, layer, digest=sha512(layer))
    body = json_bytes(
        image_manifest_dict(
            descriptor(OCI_CONFIG, cfg),
            [{"mediaType": OCI_LAYER, "digest": sha512(layer), "size": len(layer)}],
        )
    )
    m = Manifest(body, OCI_MANIFEST)
    assert_status(put_manifest(reg, repo, "v1", m.body, m.media_type), 201)
    assert_manifest_served(reg, repo, "v1", m)


def _invalid_manifest(reg, repo, case):
    """(Content-Type or None, body) for each MANIFEST_INVALID case; blobs exist."""
    good = build_image(reg, repo)
    doc = json.loads(good.body)
    if case == "not-json":
        return OCI_MANIFEST, b'{"schemaVersion": 2, "mediaType": '
    if case == "empty-body":
        return OCI_MANIFEST, b""
    if case == "json-array":
        return OCI_MANIFEST, b"[]"
    if case == "json-string":
        return OCI_MANIFEST, b'"manifest"'
    if case == "binary":
        return OCI_MANIFEST, b"\x00\xff\xfe" + os.urandom(200)
    if case == "unknown-media-type":
        doc["mediaType"] = "application/vnd.example.unknown.v1+json"
        return doc["mediaType"], json_bytes(doc)
    if case == "plain-json-media-type":
        doc.pop("mediaType")
        return "application/json", json_bytes(doc)
    if case == "header-body-mismatch":
        return DOCKER_MANIFEST, good.body
    if case == "header-index-body-manifest":
        return OCI_INDEX, good.body
    if case == "no-media-type-anywhere":
        doc.pop("mediaType")
        return None, json_bytes(doc)
    if case == "missing-config":
        doc.pop("config")
        return OCI_MANIFEST, json_bytes(doc)
    if case == "config-not-object":
        doc["config"] = doc["config"]["digest"]
        return OCI_MANIFEST, json_bytes(doc)
    if case == "layers-not-array":
        doc["layers"] = doc["layers"][0]
        return OCI_MANIFEST, json_bytes(doc)
    if case == "schema-version-1":
        doc["schemaVersion"] = 1
        return OCI_MANIFEST, json_bytes(doc)
    if case == "schema-version-missing":
        doc.pop("schemaVersion")
        return OCI_MANIFEST, json_bytes(doc)
    if case == "index-without-manifests":
        return OCI_INDEX, json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX})
    if case == "descriptor-without-digest":
        doc["layers"][0].pop("digest")
        return OCI_MANIFEST, json_bytes(doc)
    raise ValueError(case)


INVALID_MANIFEST_CASES = [
    "not-json",
    "empty-body",
    "json-array",
    "json-string",
    "binary",
    "unknown-media-type",
    "plain-json-media-type",
    "header-body-mismatch",
    "header-index-body-manifest",
    "no-media-type-anywhere",
    "missing-config",
    "config-not-object",
    "layers-not-array",
    "schema-version-1",
    "schema-version-missing",
    "index-without-manifests",
    "descriptor-without-digest",
]


@pytest.mark.parametrize("case", INVALID_MANIFEST_CASES)
def test_invalid_manifest_is_manifest_invalid(reg, repo, case):
    content_type, body = _invalid_manifest(reg, repo, case)
    r = put_manifest(reg, repo, "bad", body, content_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_manifest_absent(reg, repo, "bad")
    assert_manifest_absent(reg, repo, sha256(body))


def test_manifest_with_malformed_layer_digest_is_rejected(reg, repo):
    m = build_image(reg, repo)
    doc = json.loads(m.body)
    doc["layers"][0]["digest"] = "sha256:not-a-digest"
    r = put_manifest(reg, repo, "bad", json_bytes(doc), OCI_MANIFEST)
    assert_error(r, 400, {"MANIFEST_INVALID", "DIGEST_INVALID"})


def test_manifest_media_type_from_body_when_no_content_type(reg, repo):
    """ECR takes the manifest's own mediaType when the request names none."""
    m = build_image(reg, repo)
    assert_status(put_manifest(reg, repo, "v1", m.body, None), 201)
    assert_manifest_served(reg, repo, "v1", m)


def test_manifest_media_type_from_content_type_when_body_has_none(reg, repo):
    """OCI manifests may omit mediaType; the request's Content-Type names the type."""
    m = build_image(reg, repo)
    doc = json.loads(m.body)
    doc.pop("mediaType")
    m = Manifest(json_bytes(doc), OCI_MANIFEST)
    assert_status(put_manifest(reg, repo, "v1", m.body, OCI_MANIFEST), 201)
    assert_manifest_served(reg, repo, "v1", m)


def test_manifest_missing_layer_is_manifest_blob_unknown(reg, berth, repo):
    cfg, layer = config_bytes(), os.urandom(100)
    upload_blob(reg, repo, cfg)
    m = Manifest(
        json_bytes(image_manifest_dict(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)])),
        OCI_MANIFEST,
    )
    r = put_manifest(reg, repo, "v1", m.body, m.media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN", layers_missing([sha256(layer)], repo, berth.account_id))
    assert_manifest_absent(reg, repo, "v1")
    assert_manifest_absent(reg, repo, m.digest)


def test_manifest_missing_config_is_manifest_blob_unknown(reg, berth, repo):
    cfg, layer = config_bytes(docker=True), os.urandom(100)
    upload_blob(reg, repo, layer)
    m = Manifest(
        json_bytes(
            image_manifest_dict(descriptor(DOCKER_CONFIG, cfg), [descriptor(DOCKER_LAYER, layer)], docker=True)
        ),
        DOCKER_MANIFEST,
    )
    r = put_manifest(reg, repo, "v1", m.body, m.media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN", layers_missing([sha256(cfg)], repo, berth.account_id))
    assert_manifest_absent(reg, repo, "v1")


def test_manifest_several_missing_blobs_are_all_named(reg, berth, repo):
    cfg, present, gone1, gone2 = config_bytes(), os.urandom(10), os.urandom(11), os.urandom(12)
    upload_blob(reg, repo, cfg)
    upload_blob(reg, repo, present)
    body = json_bytes(
        image_manifest_dict(
            descriptor(OCI_CONFIG, cfg),
            [descriptor(OCI_LAYER, b) for b in (gone1, present, gone2)],
        )
    )
    r = put_manifest(reg, repo, "v1", body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    msg = r.json()["errors"][0]["message"]
    m = LAYERS_MISSING_RE.fullmatch(msg)
    assert m, msg
    assert m.group("name") == repo and m.group("account") == berth.account_id
    assert set(m.group("digests").split(", ")) == {sha256(gone1), sha256(gone2)}


def test_manifest_blobs_in_another_repository_do_not_count(reg, berth, new_repo):
    a, b = new_repo("a"), new_repo("b")
    m = build_image(reg, b, layers=1)  # blobs uploaded to b only
    r = put_manifest(reg, a, "v1", m.body, m.media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_manifest_absent(reg, a, "v1")


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_index_with_missing_child_is_manifest_blob_unknown(reg, repo, docker):
    present = push_image(reg, repo, docker=docker)
    absent = build_image(reg, repo, docker=docker)  # blobs uploaded, manifest never pushed
    idx = build_index([present, absent], docker=docker)
    assert_error(put_manifest(reg, repo, "multi", idx.body, idx.media_type), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_manifest_absent(reg, repo, "multi")


def test_index_child_in_another_repository_does_not_count(reg, new_repo):
    a, b = new_repo("a"), new_repo("b")
    child = push_image(reg, b)
    idx = build_index([child])
    assert_error(put_manifest(reg, a, "multi", idx.body, idx.media_type), 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_child_that_is_only_a_blob_does_not_count(reg, repo):
    """A blob with the child's digest is not a manifest in the repository."""
    child = build_image(reg, repo)
    upload_blob(reg, repo, child.body)  # the manifest bytes as a plain blob
    idx = build_index([child])
    assert_error(put_manifest(reg, repo, "multi", idx.body, idx.media_type), 400, "MANIFEST_BLOB_UNKNOWN")


def test_artifact_subject_need_not_exist(reg, repo):
    subject = {"mediaType": OCI_MANIFEST, "digest": random_digest(), "size": 1234}
    art = build_artifact(reg, repo, subject)
    r = put_manifest(reg, repo, art.digest, art.body, art.media_type)
    assert_status(r, 201)
    assert r.headers.get("OCI-Subject") == subject["digest"]
    assert_manifest_served(reg, repo, art.digest, art)


def _padded_manifest(reg, repo, total_size):
    """A valid OCI manifest of exactly `total_size` bytes (padding in an annotation)."""
    m = build_image(reg, repo)
    doc = json.loads(m.body)
    doc["annotations"] = {"pad": ""}
    base = len(json_bytes(doc))
    doc["annotations"]["pad"] = "x" * (total_size - base)
    body = json_bytes(doc)
    assert len(body) == total_size
    return Manifest(body, OCI_MANIFEST)


def test_manifest_of_exactly_4mib_is_accepted(reg, repo):
    m = _padded_manifest(reg, repo, MANIFEST_LIMIT)
    assert_status(put_manifest(reg, repo, "big", m.body, m.media_type), 201)
    assert_manifest_served(reg, repo, "big", m)


def test_manifest_over_4mib_is_size_invalid(reg, repo):
    m = _padded_manifest(reg, repo, MANIFEST_LIMIT + 1)
    assert_error(put_manifest(reg, repo, "big", m.body, m.media_type), 413, "SIZE_INVALID")
    assert_manifest_absent(reg, repo, "big")
    assert_alive(reg)


INVALID_TAGS = {"plus": "a+b", "bang": "a!b", "at": "a@b", "tilde": "a~b", "301-chars": "t" * 301}


@pytest.mark.parametrize("tag", list(INVALID_TAGS.values()), ids=list(INVALID_TAGS))
def test_invalid_tag_on_put_is_tag_invalid(reg, repo, tag):
    m = build_image(reg, repo)
    assert_error(put_manifest(reg, repo, tag, m.body, m.media_type), 400, "TAG_INVALID")
    assert_manifest_absent(reg, repo, m.digest)


def test_invalid_tag_on_get_is_400(reg, repo):
    """ECR answers 400 for a tag outside the pattern (section 5.4), not 404."""
    assert_error(reg.get(f"/v2/{repo}/manifests/a+b"), 400, "TAG_INVALID")
    h = reg.head(f"/v2/{repo}/manifests/a+b")
    assert_status(h, 400)


VALID_TAGS = {
    "300-chars": "t" * 300,
    "leading-dash": "-dash",
    "leading-dot": ".dot",
    "leading-underscore": "_under",
    "mixed": "UPPER_lower.1-2",
    "one-char": "x",
}


@pytest.mark.parametrize("tag", list(VALID_TAGS.values()), ids=list(VALID_TAGS))
def test_valid_tags(reg, repo, tag):
    m = push_image(reg, repo, tag)
    assert_manifest_served(reg, repo, tag, m)
    tags, _ = tags_of(reg, repo)
    assert tags == [tag]


def test_retag_moves_the_tag(reg, repo):
    first = push_image(reg, repo, "latest")
    second = push_image(reg, repo, "latest")
    assert first.digest != second.digest
    assert_manifest_served(reg, repo, "latest", second)
    assert_manifest_served(reg, repo, first.digest, first)  # still there, now untagged
    tags, _ = tags_of(reg, repo)
    assert tags == ["latest"]


def test_repush_of_same_manifest_and_tag_succeeds(reg, repo):
    m = push_image(reg, repo, "v1")
    r = put_manifest(reg, repo, "v1", m.body, m.media_type)
    assert_status(r, 201)
    assert r.headers.get("Docker-Content-Digest") == m.digest
    r = put_manifest(reg, repo, m.digest, m.body, m.media_type)
    assert_status(r, 201)
    assert_manifest_served(reg, repo, "v1", m)


def test_delete_manifest_by_digest_removes_its_tags(reg, repo):
    m = push_image(reg, repo, "t1")
    push_manifest(reg, repo, "t2", m)
    keep = push_image(reg, repo, "keep")
    r = reg.delete(f"/v2/{repo}/manifests/{m.digest}")
    assert_status(r, 202)
    assert_manifest_absent(reg, repo, m.digest)
    assert_manifest_absent(reg, repo, "t1")
    assert_manifest_absent(reg, repo, "t2")
    tags, _ = tags_of(reg, repo)
    assert tags == ["keep"]
    assert_manifest_served(reg, repo, "keep", keep)
    assert_error(reg.delete(f"/v2/{repo}/manifests/{m.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_by_tag_removes_only_the_tag(reg, repo):
    m = push_image(reg, repo, "t1")
    push_manifest(reg, repo, "t2", m)
    r = reg.delete(f"/v2/{repo}/manifests/t1")
    assert_status(r, 202)
    assert_manifest_absent(reg, repo, "t1")
    assert_manifest_served(reg, repo, "t2", m)
    assert_manifest_served(reg, repo, m.digest, m)
    tags, _ = tags_of(reg, repo)
    assert tags == ["t2"]
    assert_error(reg.delete(f"/v2/{repo}/manifests/t1"), 404, "MANIFEST_UNKNOWN")


def test_deleted_manifest_can_be_pushed_again(reg, repo):
    m = push_image(reg, repo, "v1")
    assert_status(reg.delete(f"/v2/{repo}/manifests/{m.digest}"), 202)
    assert_status(put_manifest(reg, repo, "v1", m.body, m.media_type), 201)
    assert_manifest_served(reg, repo, "v1", m)


@pytest.mark.parametrize("ref", ["nosuchtag", "digest"])
def test_missing_manifest_is_manifest_unknown(reg, repo, ref):
    push_image(reg, repo, "present")
    ref = random_digest() if ref == "digest" else ref
    assert_manifest_absent(reg, repo, ref)
    assert_error(reg.delete(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


def test_manifest_of_one_repository_is_not_visible_in_another(reg, new_repo):
    a, b = new_repo("a"), new_repo("b")
    m = push_image(reg, a, "v1")
    assert_manifest_absent(reg, b, m.digest)
    assert_manifest_absent(reg, b, "v1")


# =====================================================================================
# content negotiation
# =====================================================================================


def _stored(reg, repo, kind="oci-manifest", tag="v1"):
    m = make_manifest(reg, repo, kind)
    push_manifest(reg, repo, tag, m)
    return m


@pytest.mark.parametrize(
    "accept",
    [
        f"{DOCKER_MANIFEST}, {OCI_MANIFEST}",
        f"{DOCKER_MANIFEST},{DOCKER_LIST},{OCI_INDEX},{OCI_MANIFEST}",
        f"{OCI_MANIFEST};q=0.1, {DOCKER_MANIFEST};q=0.9",  # q-values are ignored
        "*/*",
        f"{DOCKER_MANIFEST}, */*",
        OCI_MANIFEST,
    ],
)
def test_accept_header_listing_stored_type_serves_it(reg, repo, accept):
    m = _stored(reg, repo)
    assert_manifest_served(reg, repo, "v1", m, headers={"Accept": accept})


def test_no_accept_header_serves_stored_type(berth, reg, repo):
    m = _stored(reg, repo)
    status, headers, body = raw_request(berth, "GET", f"/v2/{repo}/manifests/v1")
    assert status == 200
    assert body == m.body
    assert headers.get("Content-Type") == OCI_MANIFEST
    assert headers.get("Docker-Content-Digest") == m.digest


def test_several_accept_headers_are_combined(berth, reg, repo):
    m = _stored(reg, repo)
    accept = [("Accept", DOCKER_MANIFEST), ("Accept", f"{DOCKER_LIST}, {OCI_MANIFEST}")]
    for method in ("GET", "HEAD"):
        status, headers, body = raw_request(berth, method, f"/v2/{repo}/manifests/v1", accept)
        assert status == 200, (method, status, body)
        assert headers.get("Content-Type") == OCI_MANIFEST
        assert headers.get("Docker-Content-Digest") == m.digest
        assert body == (m.body if method == "GET" else b"")


def test_several_accept_headers_without_stored_type_is_manifest_unknown(berth, reg, repo):
    _stored(reg, repo)
    accept = [("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST), ("Accept", OCI_INDEX)]
    status, headers, body = raw_request(berth, "GET", f"/v2/{repo}/manifests/v1", accept)
    assert status == 404
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize(
    "kind,accept",
    [
        # make_manifest's OCI manifest has annotations, which schema 2 cannot carry.
        ("oci-manifest", DOCKER_MANIFEST),
        ("oci-manifest", f"{DOCKER_MANIFEST}, {OCI_INDEX}"),
        ("oci-index", OCI_MANIFEST),
        ("docker-list", f"{DOCKER_MANIFEST}, {OCI_INDEX}"),
        ("oci-manifest", "application/json"),
        ("oci-index", DOCKER_LIST),
    ],
)
def test_accept_excluding_stored_type_is_manifest_unknown(reg, repo, kind, accept):
    _stored(reg, repo, kind)
    r = reg.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    h = reg.head(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
    assert_status(h, 404)


LAYER_TYPES = {
    DOCKER_MANIFEST: ("application/vnd.docker.container.image.v1+json",
                      "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    OCI_MANIFEST: ("application/vnd.oci.image.config.v1+json",
                   "application/vnd.oci.image.layer.v1.tar+gzip"),
}


@pytest.mark.parametrize(
    "stored,accept",
    [
        (DOCKER_MANIFEST, OCI_MANIFEST),
        (OCI_MANIFEST, DOCKER_MANIFEST),
        (OCI_MANIFEST, f"{DOCKER_MANIFEST}, {OCI_INDEX}"),
    ],
)
def test_by_tag_a_manifest_is_converted_between_schema2_and_oci(reg, repo, stored, accept):
    m = push_manifest(reg, repo, "v1", build_image(reg, repo, docker=stored == DOCKER_MANIFEST, layers=2))
    target = DOCKER_MANIFEST if stored == OCI_MANIFEST else OCI_MANIFEST
    r = reg.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
    assert_status(r, 200)
    assert r.headers["Content-Type"] == target
    # The converted manifest is new bytes with its own digest; the blobs are the same.
    assert r.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(r.content).hexdigest()
    assert r.headers["Docker-Content-Digest"] != m.digest
    got, was = json.loads(r.content), json.loads(m.body)
    assert got["mediaType"] == target
    assert (got["config"]["mediaType"], got["layers"][0]["mediaType"]) == LAYER_TYPES[target]
    assert [l["digest"] for l in got["layers"]] == [l["digest"] for l in was["layers"]]
    assert got["config"]["digest"] == was["config"]["digest"]
    h = reg.head(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
    assert_status(h, 200)
    assert h.headers["Docker-Content-Digest"] == r.headers["Docker-Content-Digest"]
    # By digest there is no conversion (ECR's rule).
    r = reg.get(f"/v2/{repo}/manifests/{m.digest}", headers={"Accept": accept})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("kind,accept", [("oci-index", OCI_INDEX), ("docker-list", DOCKER_LIST)])
def test_accept_for_index_types(reg, repo, kind, accept):
    m = _stored(reg, repo, kind)
    assert_manifest_served(reg, repo, "v1", m, headers={"Accept": accept})


# =====================================================================================
# tags/list
# =====================================================================================


def _tag_all(reg, repo, tags):
    m = push_image(reg, repo)
    for t in tags:
        push_manifest(reg, repo, t, m)
    return m


def test_tags_list_is_sorted(reg, repo):
    tags = ["v2", "latest", "v10", "1.0", "beta", "v1", "1.0-rc1", "_x"]
    _tag_all(reg, repo, tags)
    got, r = tags_of(reg, repo)
    assert got == sorted(tags)  # byte order: "1.0" < "1.0-rc1" < "_x" < "beta" ... "v10" < "v2"
    assert "Link" not in r.headers


def test_tags_list_of_empty_repository(reg, repo):
    got, r = tags_of(reg, repo)
    assert got == []
    assert "Link" not in r.headers


def test_tags_list_pagination_follows_link(reg, repo):
    tags = ["a1", "a2", "b1", "b2", "c1"]
    _tag_all(reg, repo, tags)
    path = f"/v2/{repo}/tags/list"
    got, r = tags_of(reg, repo, n=2)
    assert got == ["a1", "a2"]
    target = assert_next_link(r, path, 2, "a2")
    r = reg.get(target)
    assert_status(r, 200)
    assert r.json() == {"name": repo, "tags": ["b1", "b2"]}
    target = assert_next_link(r, path, 2, "b2")
    r = reg.get(target)
    assert_status(r, 200)
    assert r.json() == {"name": repo, "tags": ["c1"]}
    assert "Link" not in r.headers


def test_tags_list_no_link_when_last_page_is_exactly_full(reg, repo):
    _tag_all(reg, repo, ["a", "b", "c", "d"])
    got, r = tags_of(reg, repo, n=2)
    assert got == ["a", "b"]
    assert_next_link(r, f"/v2/{repo}/tags/list", 2, "b")
    got, r = tags_of(reg, repo, n=2, last="b")
    assert got == ["c", "d"]
    assert "Link" not in r.headers


def test_tags_list_last_without_n(reg, repo):
    _tag_all(reg, repo, ["a", "b", "c", "d"])
    got, r = tags_of(reg, repo, last="b")
    assert got == ["c", "d"]
    assert "Link" not in r.headers


def test_tags_list_last_that_is_not_a_tag(reg, repo):
    _tag_all(reg, repo, ["a", "b", "d", "e"])
    got, _ = tags_of(reg, repo, n=10, last="c")
    assert got == ["d", "e"]
    got, _ = tags_of(reg, repo, last="zzz")
    assert got == []


def test_tags_list_n_zero(reg, repo):
    _tag_all(reg, repo, ["a", "b"])
    got, r = tags_of(reg, repo, n=0)
    assert got == []
    assert "Link" not in r.headers


def test_tags_list_n_larger_than_count(reg, repo):
    _tag_all(reg, repo, ["a", "b", "c"])
    got, r = tags_of(reg, repo, n=50)
    assert got == ["a", "b", "c"]
    assert "Link" not in r.headers


def test_tags_list_pagination_with_slashed_name(reg, berth):
    name = f"{unique_name('team')}/app"
    berth.create_repository(name)
    _tag_all(reg, name, ["x1", "x2", "x3"])
    got, r = tags_of(reg, name, n=1)
    assert got == ["x1"]
    target = assert_next_link(r, f"/v2/{name}/tags/list", 1, "x1")
    r = reg.get(target)
    assert_status(r, 200)
    assert r.json() == {"name": name, "tags": ["x2"]}


def test_tags_list_excludes_untagged_and_deleted(reg, repo):
    m = push_image(reg, repo, "keep")
    push_image(reg, repo)  # untagged
    push_manifest(reg, repo, "gone", m)
    assert_status(reg.delete(f"/v2/{repo}/manifests/gone"), 202)
    got, _ = tags_of(reg, repo)
    assert got == ["keep"]


# =====================================================================================
# _catalog
# =====================================================================================


CATALOG_NAMES = ["zeta", "alpha", "team/app", "beta", "alpha/sub", "alpha-x"]


def test_catalog_sorted_and_paginated(berth_factory):
    srv = berth_factory()
    reg = Registry(srv.url, auth=srv.registry_auth())
    for name in CATALOG_NAMES:
        srv.create_repository(name)
    expected = sorted(CATALOG_NAMES)  # alpha, alpha-x, alpha/sub, beta, team/app, zeta
    r = reg.get("/v2/_catalog")
    assert_status(r, 200)
    assert r.json() == {"repositories": expected}
    assert "Link" not in r.headers
    # n=2 walks three full pages; the last one has no Link
    r = reg.get("/v2/_catalog", params={"n": 2})
    assert_status(r, 200)
    assert r.json()["repositories"] == expected[0:2]
    target = assert_next_link(r, "/v2/_catalog", 2, expected[1])
    r = reg.get(target)
    assert r.json()["repositories"] == expected[2:4]
    target = assert_next_link(r, "/v2/_catalog", 2, expected[3])
    r = reg.get(target)
    assert r.json()["repositories"] == expected[4:6]
    assert "Link" not in r.headers
    # n=4: one full page then a short one
    r = reg.get("/v2/_catalog", params={"n": 4})
    assert r.json()["repositories"] == expected[0:4]
    r = reg.get(assert_next_link(r, "/v2/_catalog", 4, expected[3]))
    assert r.json()["repositories"] == expected[4:]
    assert "Link" not in r.headers
    # last without n, last with a slash, and n=0
    r = reg.get("/v2/_catalog", params={"last": "beta"})
    assert r.json()["repositories"] == ["team/app", "zeta"]
    r = reg.get("/v2/_catalog", params={"last": "alpha/sub", "n": 1})
    assert r.json()["repositories"] == ["beta"]
    r = reg.get("/v2/_catalog", params={"n": 0})
    assert_status(r, 200)
    assert r.json()["repositories"] == []
    assert "Link" not in r.headers


def test_catalog_lists_created_repositories_in_order(reg, new_repo):
    mine = {new_repo("cat"), new_repo("cat"), new_repo("cat")}
    everything = catalog_all(reg, n=2)
    assert everything == sorted(everything)
    assert len(everything) == len(set(everything))
    assert mine <= set(everything)
    assert catalog_all(reg) == everything


# =====================================================================================
# referrers
# =====================================================================================


def get_referrers(reg, repo, digest, artifact_type=None):
    params = {"artifactType": artifact_type} if artifact_type else None
    r = reg.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert_status(r, 200)
    assert media_type(r) == OCI_INDEX, describe(r)
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body.get("mediaType") == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return body["manifests"], r


def assert_referrer_descriptor(d, m):
    """A referrers descriptor of manifest `m`: mediaType, digest, size, artifactType
    (the manifest's, else its config media type), annotations copied; nothing else."""
    assert set(d) <= {"mediaType", "digest", "size", "artifactType", "annotations"}, d
    assert d["mediaType"] == m.media_type, d
    assert d["digest"] == m.digest, d
    assert d["size"] == m.size, d
    assert d.get("artifactType") == m.artifact_type, d
    assert (d.get("annotations") or {}) == (m.annotations or {}), d


def test_referrers_empty_for_digest_without_referrers(reg, repo):
    manifests, r = get_referrers(reg, repo, random_digest())
    assert manifests == []
    assert "OCI-Filters-Applied" not in r.headers


def test_referrers_empty_for_existing_manifest_without_referrers(reg, repo):
    m = push_image(reg, repo, "v1")
    manifests, _ = get_referrers(reg, repo, m.digest)
    assert manifests == []


def _push_referrers(reg, repo, subject):
    sbom = build_artifact(
        reg, repo, subject.as_descriptor(), "application/vnd.example.sbom.v1",
        {"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    sig = build_artifact(
        reg, repo, subject.as_descriptor(), None, {"org.example.kind": "sig"},
        config_media_type="application/vnd.example.signature.config.v1+json",
    )
    bundle = build_index(
        [push_image(reg, repo)],
        artifactType="application/vnd.example.bundle.v1",
        subject=subject.as_descriptor(),
        annotations={"org.example.kind": "bundle"},
    )
    for m in (sbom, sig, bundle):
        r = put_manifest(reg, repo, m.digest, m.body, m.media_type)
        assert_status(r, 201)
        assert r.headers.get("OCI-Subject") == subject.digest
    return sbom, sig, bundle


def test_referrers_lists_manifests_with_that_subject(reg, repo):
    subject = push_image(reg, repo, "v1")
    other_subject = push_image(reg, repo, "v2")
    refs = _push_referrers(reg, repo, subject)
    unrelated = build_artifact(reg, repo, other_subject.as_descriptor())
    push_manifest(reg, repo, unrelated.digest, unrelated)

    manifests, r = get_referrers(reg, repo, subject.digest)
    assert "OCI-Filters-Applied" not in r.headers
    by_digest = {d["digest"]: d for d in manifests}
    assert len(manifests) == 3 and set(by_digest) == {m.digest for m in refs}
    for m in refs:
        assert_referrer_descriptor(by_digest[m.digest], m)
    # the signature has no artifactType: its config media type stands in
    assert by_digest[refs[1].digest]["artifactType"] == "application/vnd.example.signature.config.v1+json"

    manifests, _ = get_referrers(reg, repo, other_subject.digest)
    assert [d["digest"] for d in manifests] == [unrelated.digest]


def test_referrers_artifact_type_filter(reg, repo):
    subject = push_image(reg, repo, "v1")
    sbom, sig, bundle = _push_referrers(reg, repo, subject)
    manifests, r = get_referrers(reg, repo, subject.digest, "application/vnd.example.sbom.v1")
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [d["digest"] for d in manifests] == [sbom.digest]
    assert_referrer_descriptor(manifests[0], sbom)
    manifests, r = get_referrers(
        reg, repo, subject.digest, "application/vnd.example.signature.config.v1+json"
    )
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [d["digest"] for d in manifests] == [sig.digest]


def test_referrers_filter_without_match_is_empty(reg, repo):
    subject = push_image(reg, repo, "v1")
    _push_referrers(reg, repo, subject)
    manifests, r = get_referrers(reg, repo, subject.digest, "application/vnd.example.none")
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert manifests == []


def test_referrers_of_same_subject_in_another_repository_are_not_listed(reg, new_repo, mounting):
    a, b = new_repo("a"), new_repo("b")
    m = build_image(reg, a)
    push_manifest(reg, a, "v1", m)
    doc = json.loads(m.body)
    # the same image (same digest) in b
    for desc in [doc["config"]] + doc["layers"]:
        r = reg.post(f"/v2/{b}/blobs/uploads/", params={"mount": desc["digest"], "from": a})
        assert_status(r, 201)
    push_manifest(reg, b, "v1", m)
    art = build_artifact(reg, b, m.as_descriptor())
    push_manifest(reg, b, art.digest, art)
    manifests, _ = get_referrers(reg, b, m.digest)
    assert [d["digest"] for d in manifests] == [art.digest]
    manifests, _ = get_referrers(reg, a, m.digest)
    assert manifests == []


def test_referrers_lists_artifact_whose_subject_is_missing(reg, repo):
    missing = random_digest()
    art = build_artifact(reg, repo, {"mediaType": OCI_MANIFEST, "digest": missing, "size": 10})
    push_manifest(reg, repo, art.digest, art)
    manifests, _ = get_referrers(reg, repo, missing)
    assert [d["digest"] for d in manifests] == [art.digest]
    assert_referrer_descriptor(manifests[0], art)


def test_deleted_referrer_is_no_longer_listed(reg, repo):
    subject = push_image(reg, repo, "v1")
    art = build_artifact(reg, repo, subject.as_descriptor())
    push_manifest(reg, repo, art.digest, art)
    manifests, _ = get_referrers(reg, repo, subject.digest)
    assert len(manifests) == 1
    assert_status(reg.delete(f"/v2/{repo}/manifests/{art.digest}"), 202)
    manifests, _ = get_referrers(reg, repo, subject.digest)
    assert manifests == []


@pytest.mark.parametrize(
    "bad", ["sha256:abc", "latest", "sha256:" + "g" * 64], ids=["too-short", "tag", "not-hex"]
)
def test_referrers_malformed_digest_is_digest_invalid(reg, repo, bad):
    assert_error(reg.get(f"/v2/{repo}/referrers/{bad}"), 400, "DIGEST_INVALID")


# =====================================================================================
# host routing: <acct>.dkr.ecr.<region>.<domain>[:port] selects the registry
# =====================================================================================


def test_other_account_does_not_see_default_repositories(berth, reg, repo):
    img = push_image(reg, repo, "v1")
    other = registry_for(berth, OTHER_ACCOUNT, OTHER_REGION)
    msg = name_unknown(repo, OTHER_ACCOUNT)
    assert_error(other.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN", msg)
    assert_error(other.get(f"/v2/{repo}/manifests/v1"), 404, "NAME_UNKNOWN", msg)
    assert_error(other.get(f"/v2/{repo}/blobs/{json.loads(img.body)['config']['digest']}"), 404, "NAME_UNKNOWN", msg)
    assert_error(other.post(f"/v2/{repo}/blobs/uploads/"), 404, "NAME_UNKNOWN", msg)
    assert_status(other.head(f"/v2/{repo}/manifests/{img.digest}"), 404)
    assert repo not in catalog_all(other)


def test_same_account_in_another_region_is_another_registry(berth, reg, repo):
    push_image(reg, repo, "v1")
    other = registry_for(berth, berth.account_id, OTHER_REGION)
    assert_error(
        other.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN", name_unknown(repo, berth.account_id)
    )


def test_explicit_default_registry_host_is_the_default_registry(berth, reg, repo):
    m = push_image(reg, repo, "v1")
    for with_port in (True, False):
        explicit = registry_for(berth, berth.account_id, berth.region, with_port=with_port)
        assert_manifest_served(explicit, repo, "v1", m)


@pytest.mark.parametrize("host", ["example.com", "localhost", "registry.internal:5000"])
def test_unrelated_host_is_the_default_registry(berth, reg, repo, host):
    m = push_image(reg, repo, "v1")
    assert_manifest_served(Registry(berth.url, host=host, auth=berth.registry_auth()), repo, "v1", m)


def test_repository_created_in_another_account(berth, reg):
    name = unique_name("acct")
    create_repo_in(berth, name, OTHER_ACCOUNT, OTHER_REGION)
    for with_port in (True, False):
        other = registry_for(berth, OTHER_ACCOUNT, OTHER_REGION, with_port=with_port)
        assert_status(other.post(f"/v2/{name}/blobs/uploads/"), 202)
    other = registry_for(berth, OTHER_ACCOUNT, OTHER_REGION)
    m = push_image(other, name, "v1")
    assert_manifest_served(other, name, "v1", m)
    # invisible from the default registry and from the same account in another region
    assert_error(reg.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN", name_unknown(name, berth.account_id))
    elsewhere = registry_for(berth, OTHER_ACCOUNT, "ap-south-1")
    assert_error(elsewhere.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN", name_unknown(name, OTHER_ACCOUNT))


def test_same_name_in_two_registries_is_two_repositories(berth, reg):
    name = unique_name("twin")
    berth.create_repository(name)
    create_repo_in(berth, name, OTHER_ACCOUNT, OTHER_REGION)
    other = registry_for(berth, OTHER_ACCOUNT, OTHER_REGION)
    mine = push_image(reg, name, "v1")
    theirs = push_image(other, name, "v1")
    assert_manifest_served(reg, name, "v1", mine)
    assert_manifest_served(other, name, "v1", theirs)
    assert_manifest_absent(reg, name, theirs.digest)
    assert_manifest_absent(other, name, mine.digest)
    # blobs: a digest linked in one registry is unknown in the other
    data = os.urandom(40)
    d = upload_blob(other, name, data)
    assert_blob_absent(reg, name, d)
    # mounts never cross registries, with or without `from`
    r = reg.post(f"/v2/{name}/blobs/uploads/", params={"mount": d, "from": name})
    assert_status(r, 202)
    r = reg.post(f"/v2/{name}/blobs/uploads/", params={"mount": d})
    assert_status(r, 202)
    assert_blob_absent(reg, name, d)
    # referrers are per registry too
    art = build_artifact(other, name, theirs.as_descriptor())
    push_manifest(other, name, art.digest, art)
    assert get_referrers(reg, name, theirs.digest)[0] == []


def test_catalog_is_per_registry(berth):
    account = "".join(str(b % 10) for b in os.urandom(12))  # a registry nobody else uses
    names = sorted([unique_name("c1"), unique_name("c2"), f"{unique_name('c3')}/x"])
    for n in names:
        create_repo_in(berth, n, account, OTHER_REGION)
    other = registry_for(berth, account, OTHER_REGION)
    assert catalog_all(other) == names
    assert catalog_all(other, n=1) == names
    assert not set(names) & set(catalog_all(Registry(berth.url, auth=berth.registry_auth())))


# =====================================================================================
# persistence
# =====================================================================================


def test_pushed_image_survives_restart(berth_factory):
    srv = berth_factory()
    name = f"{unique_name('persist')}/app"
    srv.create_repository(name)
    reg = Registry(srv.url, auth=srv.registry_auth())
    m = push_image(reg, name, "v1")
    data = os.urandom(1000)
    d = upload_blob(reg, name, data)
    srv.stop()
    srv.start()
    reg = Registry(srv.url, auth=srv.registry_auth())
    assert_manifest_served(reg, name, "v1", m)
    assert_blob_content(reg, name, d, data)
    tags, _ = tags_of(reg, name)
    assert tags == ["v1"]


# =====================================================================================
# robustness
# =====================================================================================


def test_huge_header_is_rejected_with_4xx_and_server_keeps_serving(reg):
    r = reg.get("/v2/", headers={"X-Padding": "a" * (100 * 1024)})
    assert 400 <= r.status_code < 500, describe(r)
    assert_alive(Registry(reg.base_url, auth=reg.session.auth))


def test_huge_url_is_rejected_with_4xx(reg, repo):
    r = reg.get(f"/v2/{repo}/manifests/" + "a" * (100 * 1024))
    assert 400 <= r.status_code < 500, describe(r)
    assert_alive(Registry(reg.base_url, auth=reg.session.auth))


def _garbage_requests(reg, repo, d):
    return {
        "manifest-binary": lambda: reg.put(
            f"/v2/{repo}/manifests/x", data=os.urandom(4096), headers={"Content-Type": OCI_MANIFEST}
        ),
        "manifest-binary-no-type": lambda: reg.put(f"/v2/{repo}/manifests/x", data=os.urandom(4096)),
        "manifest-deep-nesting": lambda: reg.put(
            f"/v2/{repo}/manifests/x", data=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": OCI_MANIFEST},
        ),
        "upload-garbage-digest": lambda: reg.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": "\x00garbage"}, data=b"x"
        ),
        "upload-garbage-mount": lambda: reg.post(
            f"/v2/{repo}/blobs/uploads/", params={"mount": "garbage", "from": "../../etc"}
        ),
        "patch-garbage-content-range": lambda: reg.patch(
            start_upload(reg, repo).headers["Location"], data=b"abc", headers={"Content-Range": "garbage"}
        ),
        "patch-inverted-content-range": lambda: reg.patch(
            start_upload(reg, repo).headers["Location"], data=b"abc", headers={"Content-Range": "2-0"}
        ),
        "patch-content-range-length-mismatch": lambda: reg.patch(
            start_upload(reg, repo).headers["Location"], data=b"abc", headers={"Content-Range": "0-99"}
        ),
        "blob-garbage-range": lambda: reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=zz-"}),
        "blob-multi-range": lambda: reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=0-1,5-6"}),
        "blob-huge-range": lambda: reg.get(
            f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=0-99999999999999999999999"}
        ),
        "tags-n-not-number": lambda: reg.get(f"/v2/{repo}/tags/list", params={"n": "abc"}),
        "tags-n-negative": lambda: reg.get(f"/v2/{repo}/tags/list", params={"n": "-1"}),
        "tags-n-huge": lambda: reg.get(f"/v2/{repo}/tags/list", params={"n": "9" * 30}),
        "catalog-n-huge": lambda: reg.get("/v2/_catalog", params={"n": "9" * 30}),
        "manifest-garbage-accept": lambda: reg.get(
            f"/v2/{repo}/manifests/latest", headers={"Accept": ";;;,,, q=x/"}
        ),
        "percent-encoded-garbage-name": lambda: reg.get("/v2/%ff%fe%00/tags/list"),
        "encoded-dot-dot-digest": lambda: reg.get(f"/v2/{repo}/blobs/..%2f..%2fetc%2fpasswd"),
        "upload-id-traversal": lambda: reg.get(f"/v2/{repo}/blobs/uploads/..%2f..%2fmeta.db"),
    }


GARBAGE_CASES = [
    "manifest-binary",
    "manifest-binary-no-type",
    "manifest-deep-nesting",
    "upload-garbage-digest",
    "upload-garbage-mount",
    "patch-garbage-content-range",
    "patch-inverted-content-range",
    "patch-content-range-length-mismatch",
    "blob-garbage-range",
    "blob-multi-range",
    "blob-huge-range",
    "tags-n-not-number",
    "tags-n-negative",
    "tags-n-huge",
    "catalog-n-huge",
    "manifest-garbage-accept",
    "percent-encoded-garbage-name",
    "encoded-dot-dot-digest",
    "upload-id-traversal",
]


@pytest.mark.parametrize("case", GARBAGE_CASES)
def test_garbage_requests_never_cause_5xx(reg, repo, case):
    d = upload_blob(reg, repo, os.urandom(16))
    push_image(reg, repo, "latest")
    r = _garbage_requests(reg, repo, d)[case]()
    assert r.status_code < 500, describe(r)
    assert_api_version(r)
    assert_alive(reg)


@pytest.mark.parametrize("case", ["manifest-binary", "manifest-binary-no-type", "manifest-deep-nesting"])
def test_garbage_manifest_is_manifest_invalid(reg, repo, case):
    r = _garbage_requests(reg, repo, random_digest())[case]()
    assert_error(r, 400, "MANIFEST_INVALID")


def test_invalid_content_range_is_rejected(reg, repo):
    r = start_upload(reg, repo)
    loc = r.headers["Location"]
    r = reg.patch(loc, data=b"abc", headers={"Content-Range": "garbage"})
    assert r.status_code in (400, 416), describe(r)
    assert_api_version(r)


def test_malformed_http_is_answered_or_closed_without_harm(berth, reg):
    with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\x00\x01\x02\r\n\r\n")
        reply = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    if reply:
        assert re.match(rb"HTTP/1\.[01] 4\d\d", reply), reply[:200]
    assert_alive(reg)


def _send_partial_patch(berth, location, framing, sent_data, declared):
    """Open a raw connection, send a PATCH that promises more than it sends, close."""
    path = path_of(location)
    with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as s:
        head = [
            f"PATCH {path} HTTP/1.1",
            f"Host: 127.0.0.1:{berth.port}",
            f"Authorization: {berth.basic_auth_header()}",
            "Content-Type: application/octet-stream",
        ]
        if framing == "content-length":
            head.append(f"Content-Length: {declared}")
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + sent_data)
        else:
            head.append("Transfer-Encoding: chunked")
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for piece in chunks(sent_data, 64 * 1024):
                s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            # no terminating zero-length chunk
        s.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_abrupt_disconnect_mid_patch(berth, reg, repo, framing):
    full = os.urandom(10 * MiB)
    sent = full[: 1 * MiB]
    r = start_upload(reg, repo)
    upload_id, loc = r.headers["Docker-Upload-UUID"], r.headers["Location"]
    _send_partial_patch(berth, loc, framing, sent, len(full))
    assert_alive(reg)
    st = reg.get(loc)
    if st.status_code == 404:  # the server may drop the whole session
        assert_error(st, 404, "BLOB_UPLOAD_UNKNOWN")
    else:
        assert_status(st, 204)
        assert st.headers.get("Docker-Upload-UUID") == upload_id
        assert range_end(st) + 1 <= len(sent), describe(st)
    for digest in (sha256(full), sha256(sent)):
        assert_blob_absent(reg, repo, digest)
    # the repository keeps working
    assert upload_blob(reg, repo, full) == sha256(full)
    assert_blob_content(reg, repo, sha256(full), full)


def test_abrupt_disconnect_mid_monolithic_post(berth, reg, repo):
    full = os.urandom(4 * MiB)
    d = sha256(full)
    with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as s:
        s.sendall(
            (
                f"POST /v2/{repo}/blobs/uploads/?digest={d} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{berth.port}\r\n"
                f"Authorization: {berth.basic_auth_header()}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {len(full)}\r\n\r\n"
            ).encode()
            + full[:MiB]
        )
        s.shutdown(socket.SHUT_WR)
    assert_alive(reg)
    assert_blob_absent(reg, repo, d)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, data=full)
    assert_blob_created(r, repo, d)
    assert_blob_content(reg, repo, d, full)


@pytest.mark.parametrize(
    "path", ["/nope", "/v1/_ping", "/v3/", "/v2/{repo}/unknown/thing", "/v2/{repo}", "/v2/{repo}/tags"]
)
def test_unknown_paths_are_404(reg, repo, path):
    path = path.format(repo=repo)
    r = reg.get(path)
    assert r.status_code == 404, describe(r)
    if path.startswith("/v2/"):
        assert_api_version(r)
        assert media_type(r) == "application/json", describe(r)
        assert isinstance(r.json().get("errors"), list)


WRONG_METHODS = [
    ("DELETE", "/v2/"),
    ("POST", "/v2/"),
    ("POST", "/v2/_catalog"),
    ("DELETE", "/v2/_catalog"),
    ("POST", "/v2/{repo}/manifests/latest"),
    ("PATCH", "/v2/{repo}/manifests/latest"),
    ("PUT", "/v2/{repo}/blobs/{d}"),
    ("PATCH", "/v2/{repo}/blobs/{d}"),
    ("POST", "/v2/{repo}/blobs/{d}"),
    ("PUT", "/v2/{repo}/tags/list"),
    ("DELETE", "/v2/{repo}/tags/list"),
    ("POST", "/v2/{repo}/referrers/{d}"),
    ("DELETE", "/v2/{repo}/referrers/{d}"),
    ("PUT", "/v2/{repo}/blobs/uploads/"),
    ("PATCH", "/v2/{repo}/blobs/uploads/"),
    ("POST", "/v2/{repo}/blobs/uploads/{u}"),
]


@pytest.mark.parametrize("method,path", WRONG_METHODS)
def test_wrong_method_is_404_or_405_with_oci_error(reg, repo, method, path):
    data = os.urandom(8)
    d = upload_blob(reg, repo, data)
    m = push_image(reg, repo, "latest")
    u = start_upload(reg, repo).headers["Docker-Upload-UUID"]
    r = reg.request(method, path.format(repo=repo, d=d, u=u), data=b"")
    assert r.status_code in (404, 405), describe(r)
    assert_api_version(r)
    assert media_type(r) == "application/json", describe(r)
    errors = r.json().get("errors")
    assert isinstance(errors, list) and errors and isinstance(errors[0].get("code"), str), describe(r)
    # nothing was changed by the refused request
    assert_blob_content(reg, repo, d, data)
    assert_manifest_served(reg, repo, "latest", m)
