"""Small OCI helpers for Berth's HTTP tests.

Digests, media types, a thin `requests` client that can pin the Host header
(host routing selects the registry), blob uploads, and builders for image
manifests, indexes and OCI 1.1 artifacts. Manifests are serialised once here
and the exact bytes are what the tests push and compare against.
"""

import hashlib
import json
import os
from typing import NamedTuple, Optional
from urllib.parse import urlsplit

import requests

MiB = 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EMPTY_JSON = b"{}"


# ---------------------------------------------------------------- digests


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


EMPTY_SHA256 = sha256(b"")


def random_digest() -> str:
    """A well-formed sha256 digest of content nobody has uploaded."""
    return sha256(os.urandom(32))


def unique_name(prefix: str = "repo") -> str:
    """A valid repository name that no other test uses."""
    return f"{prefix}-{os.urandom(4).hex()}"


def chunks(data: bytes, size: int = 64 * 1024):
    """A generator over `data`: requests sends it with chunked transfer encoding."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


# ---------------------------------------------------------------- json


def json_bytes(obj) -> bytes:
    """Compact JSON with the caller's key order (not sorted, not canonical)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra) -> dict:
    d = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    d.update(extra)
    return d


def config_bytes(docker: bool = False) -> bytes:
    """A minimal, unique image config (the nonce keeps digests distinct)."""
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"nonce": os.urandom(8).hex()}},
    }
    if docker:
        cfg["docker_version"] = "24.0.0"
    return json_bytes(cfg)


# ---------------------------------------------------------------- client


class Registry:
    """A requests session bound to one server, optionally with a fixed Host header.

    Paths are relative ("/v2/..."); absolute URLs (e.g. a Location) pass through.
    Redirects are never followed so tests see exactly what the server answered.
    """

    def __init__(self, base_url: str, host: Optional[str] = None, auth=None):
        self.base_url = base_url.rstrip("/")
        self.host = host
        self.session = requests.Session()
        # ECR login: ("AWS", password from GetAuthorizationToken).
        self.session.auth = auth

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            return path_or_url
        return self.base_url + path_or_url

    def request(self, method: str, path: str, headers=None, **kw) -> requests.Response:
        h = dict(headers or {})
        if self.host is not None:
            h.setdefault("Host", self.host)
        kw.setdefault("timeout", 60)
        kw.setdefault("allow_redirects", False)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def describe(resp: requests.Response) -> str:
    """One line for assertion messages: request, status, headers, start of body."""
    req = resp.request
    return (
        f"{req.method} {req.url} -> {resp.status_code} "
        f"headers={dict(resp.headers)} body={resp.content[:400]!r}"
    )


def path_of(url: str) -> str:
    """Path of a Location that may be relative or absolute."""
    return urlsplit(url).path


# ---------------------------------------------------------------- blobs


def start_upload(reg: Registry, name: str) -> requests.Response:
    r = reg.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)
    return r


def upload_blob(reg: Registry, name: str, data: bytes, digest: Optional[str] = None) -> str:
    """Upload `data` with POST then a single PUT ?digest= (the most widely used path)."""
    digest = digest or sha256(data)
    loc = start_upload(reg, name).headers["Location"]
    r = reg.put(
        loc,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, describe(r)
    return digest


# ---------------------------------------------------------------- manifests


class Manifest(NamedTuple):
    body: bytes
    media_type: str
    subject: Optional[str] = None  # digest of the subject, if any
    artifact_type: Optional[str] = None
    annotations: Optional[dict] = None

    @property
    def digest(self) -> str:
        return sha256(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def as_descriptor(self, **extra) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update(extra)
        return d


def put_manifest(
    reg: Registry, name: str, ref: str, body: bytes, media_type: Optional[str]
) -> requests.Response:
    headers = {"Content-Type": media_type} if media_type is not None else {}
    return reg.put(f"/v2/{name}/manifests/{ref}", data=body, headers=headers)


def push_manifest(reg: Registry, name: str, ref: str, m: Manifest) -> Manifest:
    r = put_manifest(reg, name, ref, m.body, m.media_type)
    assert r.status_code == 201, describe(r)
    return m


def image_manifest_dict(config: dict, layers: list, docker: bool = False, **extra) -> dict:
    m = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }
    m.update(extra)
    return m


def build_image(
    reg: Registry,
    name: str,
    docker: bool = False,
    layers: int = 1,
    annotations: Optional[dict] = None,
    upload: bool = True,
) -> Manifest:
    """Upload a fresh config and `layers` random layers to `name`; return the manifest."""
    cfg = config_bytes(docker)
    blobs = [os.urandom(100 + i) for i in range(layers)]
    if upload:
        upload_blob(reg, name, cfg)
        for b in blobs:
            upload_blob(reg, name, b)
    extra = {"annotations": annotations} if annotations else {}
    m = image_manifest_dict(
        descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, cfg),
        [descriptor(DOCKER_LAYER if docker else OCI_LAYER, b) for b in blobs],
        docker=docker,
        **extra,
    )
    return Manifest(json_bytes(m), m["mediaType"], annotations=annotations)


def push_image(reg: Registry, name: str, tag: Optional[str] = None, **kw) -> Manifest:
    m = build_image(reg, name, **kw)
    return push_manifest(reg, name, tag or m.digest, m)


def build_index(
    children: list, docker: bool = False, platforms: Optional[list] = None, **extra
) -> Manifest:
    platforms = platforms or [
        {"architecture": arch, "os": "linux"}
        for arch in ("amd64", "arm64", "s390x", "ppc64le", "riscv64")[: len(children)]
    ]
    idx = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST if docker else OCI_INDEX,
        "manifests": [c.as_descriptor(platform=p) for c, p in zip(children, platforms)],
    }
    idx.update(extra)
    return Manifest(
        json_bytes(idx),
        idx["mediaType"],
        subject=(extra.get("subject") or {}).get("digest"),
        artifact_type=extra.get("artifactType"),
        annotations=extra.get("annotations"),
    )


def build_artifact(
    reg: Registry,
    name: str,
    subject: Optional[dict],
    artifact_type: Optional[str] = "application/vnd.example.sbom.v1",
    annotations: Optional[dict] = None,
    config_media_type: Optional[str] = None,
) -> Manifest:
    """An OCI 1.1 artifact manifest with an optional `subject` descriptor.

    With `config_media_type` the config is a small blob of that type and the
    manifest has no artifactType (referrers then report config.mediaType);
    otherwise the config is the OCI empty descriptor and `artifact_type` is set.
    """
    payload = os.urandom(64)
    upload_blob(reg, name, payload)
    if config_media_type:
        cfg_data = json_bytes({"nonce": os.urandom(8).hex()})
        upload_blob(reg, name, cfg_data)
        config = descriptor(config_media_type, cfg_data)
    else:
        upload_blob(reg, name, EMPTY_JSON)
        config = descriptor(OCI_EMPTY, EMPTY_JSON)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type and not config_media_type:
        m["artifactType"] = artifact_type
    m["config"] = config
    m["layers"] = [descriptor("application/vnd.example.payload", payload)]
    if subject is not None:
        m["subject"] = subject
    if annotations:
        m["annotations"] = annotations
    return Manifest(
        json_bytes(m),
        OCI_MANIFEST,
        subject=subject["digest"] if subject else None,
        artifact_type=m.get("artifactType") or config_media_type,
        annotations=annotations,
    )
