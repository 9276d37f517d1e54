"""Real clients against a running Berth: docker, skopeo and oras-py.

Berth, like ECR, does not create repositories on push, so each test creates the
repositories it uses with ``berth admin create-repository`` first.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import oras.oci
import oras.provider
import pytest
import requests

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ALL_MANIFEST_TYPES = (DOCKER_V2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)

DIGEST_IN_PUSH_OUTPUT = re.compile(r"digest: (sha256:[0-9a-f]{64})")
TIMEOUT = 300  # upper bound for any single client command


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(argv, *, env=None, check=True, text=True, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    tool = shutil.which(argv[0])
    if tool is None:
        pytest.fail(f"{argv[0]} is not installed; run the README test command (scripts/test)")
    proc = subprocess.run(
        [tool, *argv[1:]], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=text, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
            f"stdout: {proc.stdout!s}\nstderr: {proc.stderr!s}"
        )
    return proc


def docker(env, *args, check=True) -> subprocess.CompletedProcess:
    return run(["docker", *args], env=env, check=check)


def docker_push(env, ref: str) -> tuple[str, str]:
    """Push REF; return (the manifest digest docker reports, docker's output)."""
    out = docker(env, "push", ref).stdout
    m = DIGEST_IN_PUSH_OUTPUT.search(out)
    assert m, f"no digest in docker push output:\n{out}"
    return m.group(1), out


def skopeo(*args, check=True, text=True, env=None) -> subprocess.CompletedProcess:
    return run(["skopeo", *args], check=check, text=text, env=env)


@pytest.fixture
def skopeo_env(tmp_path, registry_hosts, berth):
    """Environment for skopeo: a private auth file, logged in to this test's Berth the
    ECR way (user AWS, the password from GetAuthorizationToken)."""
    auth = tmp_path / "skopeo-auth.json"
    auth.write_text('{"auths": {}}')
    env = dict(os.environ, REGISTRY_AUTH_FILE=str(auth))
    password = berth.registry_password()
    for host in (berth.registry_host(), f"127.0.0.1:{berth.port}"):
        proc = subprocess.run(
            ["skopeo", "login", "--tls-verify=false", "--username", "AWS", "--password-stdin", host],
            input=password, capture_output=True, text=True, env=env, timeout=TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
    return env


@pytest.fixture
def docker_env(docker_env, berth):
    """The private dockerd, logged in to this test's Berth as `aws ecr get-login-password
    | docker login --username AWS --password-stdin` does."""
    docker_login(docker_env, berth, berth.registry_host())
    docker_login(docker_env, berth, f"127.0.0.1:{berth.port}")
    return docker_env


def docker_login(env, berth, host: str) -> None:
    proc = subprocess.run(
        ["docker", "login", "--username", "AWS", "--password-stdin", host],
        input=berth.registry_password(), capture_output=True, text=True, env=env, timeout=TIMEOUT,
    )
    assert proc.returncode == 0 and "Login Succeeded" in proc.stdout, proc.stdout + proc.stderr


def get_manifest(berth, repo: str, ref: str, accept=ALL_MANIFEST_TYPES, host: Optional[str] = None):
    """GET a manifest; check status and that Docker-Content-Digest matches the bytes."""
    base = f"http://{host}" if host else berth.url
    r = requests.get(
        f"{base}/v2/{repo}/manifests/{ref}", headers={"Accept": ", ".join(accept)}, timeout=60,
        auth=berth.registry_auth(),
    )
    assert r.status_code == 200, f"GET manifest {repo}:{ref}: {r.status_code} {r.text}"
    assert r.headers["Docker-Content-Digest"] == sha256_digest(r.content)
    return r


def verify_blob(berth, repo: str, digest: str, size: Optional[int] = None) -> bytes:
    r = requests.get(f"{berth.url}/v2/{repo}/blobs/{digest}", timeout=60, auth=berth.registry_auth())
    assert r.status_code == 200, f"GET blob {repo}@{digest}: {r.status_code} {r.text[:200]}"
    assert sha256_digest(r.content) == digest, f"blob {digest} in {repo} has wrong content"
    if size is not None:
        assert len(r.content) == size
    return r.content


def verify_image(berth, repo: str, ref: str) -> requests.Response:
    """GET the manifest at REF and every blob (or child manifest) it references."""
    r = get_manifest(berth, repo, ref)
    doc = json.loads(r.content)
    if "manifests" in doc:  # an index / manifest list: check each child
        for child in doc["manifests"]:
            c = get_manifest(berth, repo, child["digest"])
            assert len(c.content) == child["size"]
            verify_image(berth, repo, child["digest"])
    else:
        verify_blob(berth, repo, doc["config"]["digest"], doc["config"]["size"])
        for layer in doc["layers"]:
            verify_blob(berth, repo, layer["digest"], layer["size"])
    return r


def read_oci_layout_manifest(layout: Path, ref: str) -> tuple[str, bytes]:
    """(digest, bytes) of the manifest tagged REF in an OCI image layout."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            algo, hexpart = desc["digest"].split(":", 1)
            data = (layout / "blobs" / algo / hexpart).read_bytes()
            assert sha256_digest(data) == desc["digest"]
            return desc["digest"], data
    raise AssertionError(f"no manifest named {ref!r} in {layout}/index.json")


# ---------------------------------------------------------------------------
# docker
# ---------------------------------------------------------------------------


def test_docker_push_pull_run(berth, docker_env, build_test_image):
    berth.create_repository("my-app")
    host = berth.registry_host()
    local = build_test_image()
    ref = f"{host}/my-app:latest"
    docker(docker_env, "tag", local, ref)

    pushed, _ = docker_push(docker_env, ref)

    # The registry serves exactly the manifest docker pushed (Docker schema2, 4 layers).
    r = verify_image(berth, "my-app", "latest")
    assert r.headers["Docker-Content-Digest"] == pushed
    assert r.headers["Content-Type"] == DOCKER_V2
    assert len(json.loads(r.content)["layers"]) == 4

    docker(docker_env, "rmi", ref, local)
    assert docker(docker_env, "image", "inspect", ref, check=False).returncode != 0, "image still present locally"

    docker(docker_env, "pull", ref)
    repo_digests = json.loads(docker(docker_env, "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
    assert f"{host}/my-app@{pushed}" in repo_digests

    out = docker(docker_env, "run", "--rm", "--network", "none", ref).stdout
    assert "tini version" in out


def test_docker_cross_repo_mount(berth, docker_env, build_test_image):
    berth.create_repository("my-app")
    berth.create_repository("other-app")
    host = berth.registry_host()
    local = build_test_image()
    docker(docker_env, "tag", local, f"{host}/my-app:latest")
    first, _ = docker_push(docker_env, f"{host}/my-app:latest")

    # docker remembers where it pushed each layer, so pushing the same image to
    # another repository of the same registry asks for ?mount=...&from=my-app, which
    # mounts once the BLOB_MOUNTING account setting is on.
    berth.ecr().put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    docker(docker_env, "tag", local, f"{host}/other-app:latest")
    second, out = docker_push(docker_env, f"{host}/other-app:latest")
    assert "Mounted from my-app" in out, out
    assert second == first

    # The mounted blobs are really linked into other-app.
    verify_image(berth, "other-app", "latest")


def test_docker_push_to_missing_repository_fails(berth, docker_env, build_test_image):
    host = berth.registry_host()
    local = build_test_image()
    ref = f"{host}/never-created:latest"
    docker(docker_env, "tag", local, ref)

    proc = docker(docker_env, "push", ref, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "name unknown" in out, out
    assert "does not exist in the registry with id '000000000000'" in out, out

    # ...and the push did not create it.
    r = requests.get(f"{berth.url}/v2/never-created/tags/list", timeout=30, auth=berth.registry_auth())
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_docker_plain_ip_reference(berth, docker_env, build_test_image):
    berth.create_repository("plain/app")
    host = f"127.0.0.1:{berth.port}"
    local = build_test_image()
    ref = f"{host}/plain/app:v1"
    docker(docker_env, "tag", local, ref)

    pushed, _ = docker_push(docker_env, ref)
    docker(docker_env, "rmi", ref, local)
    docker(docker_env, "pull", ref)
    repo_digests = json.loads(docker(docker_env, "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
    assert f"{host}/plain/app@{pushed}" in repo_digests
    assert "tini version" in docker(docker_env, "run", "--rm", "--network", "none", ref).stdout

    # A plain IP host is the default registry: the same image is visible under
    # the default account's ECR host name.
    r = get_manifest(berth, "plain/app", "v1", host=berth.registry_host("000000000000", "us-east-1"))
    assert r.headers["Docker-Content-Digest"] == pushed


# ---------------------------------------------------------------------------
# skopeo
# ---------------------------------------------------------------------------


def test_skopeo_copy_formats_roundtrip(berth, docker_env, build_test_image, skopeo_env, tmp_path):
    for repo in ("my-app", "from-oci", "v2s2-app", "oci-app"):
        berth.create_repository(repo)
    host = berth.registry_host()
    local = build_test_image()
    docker(docker_env, "tag", local, f"{host}/my-app:latest")
    pushed, _ = docker_push(docker_env, f"{host}/my-app:latest")
    src = f"docker://{host}/my-app:latest"

    # --raw gives the stored bytes: their sha256 is the digest docker pushed.
    raw = skopeo("inspect", "--tls-verify=false", "--raw", src, text=False, env=skopeo_env).stdout
    assert sha256_digest(raw) == pushed
    assert get_manifest(berth, "my-app", "latest").content == raw
    info = json.loads(skopeo("inspect", "--tls-verify=false", src, env=skopeo_env).stdout)
    assert info["Digest"] == pushed
    assert len(info["Layers"]) == 4

    # registry -> OCI layout on disk -> a new repository (an OCI manifest).
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", src, f"oci:{layout}:v1", env=skopeo_env)
    oci_digest, oci_bytes = read_oci_layout_manifest(layout, "v1")
    assert json.loads(oci_bytes)["config"]["mediaType"] == OCI_CONFIG
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{host}/from-oci:v1", env=skopeo_env)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/from-oci:v1", text=False, env=skopeo_env).stdout
    assert raw == oci_bytes
    r = verify_image(berth, "from-oci", "v1")
    assert r.headers["Content-Type"] == OCI_MANIFEST
    assert r.headers["Docker-Content-Digest"] == oci_digest

    # OCI -> Docker schema2.
    skopeo(
        "copy", "--format", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{host}/from-oci:v1", f"docker://{host}/v2s2-app:v1", env=skopeo_env,
    )
    r = verify_image(berth, "v2s2-app", "v1")
    assert r.headers["Content-Type"] == DOCKER_V2
    assert json.loads(r.content)["mediaType"] == DOCKER_V2

    # Docker schema2 -> OCI.
    skopeo(
        "copy", "--format", "oci", "--src-tls-verify=false", "--dest-tls-verify=false",
        src, f"docker://{host}/oci-app:v1", env=skopeo_env,
    )
    r = verify_image(berth, "oci-app", "v1")
    assert r.headers["Content-Type"] == OCI_MANIFEST
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/oci-app:v1", text=False, env=skopeo_env).stdout
    assert raw == r.content


def test_skopeo_list_tags_and_delete(berth, docker_env, build_test_image, skopeo_env):
    berth.create_repository("my-app")
    berth.create_repository("tags-app")
    host = berth.registry_host()
    local = build_test_image()
    docker(docker_env, "tag", local, f"{host}/my-app:latest")
    pushed, _ = docker_push(docker_env, f"{host}/my-app:latest")
    src = f"docker://{host}/my-app:latest"
    copy = ("copy", "--src-tls-verify=false", "--dest-tls-verify=false")

    same_manifest_tags = ["b", "a", "v10", "v2", "1.0"]
    for tag in same_manifest_tags:
        skopeo(*copy, src, f"docker://{host}/tags-app:{tag}", env=skopeo_env)
    # A different manifest (OCI conversion of the same image) under its own tag.
    skopeo(*copy, "--format", "oci", src, f"docker://{host}/tags-app:oci-variant", env=skopeo_env)

    def list_tags() -> list:
        out = skopeo("list-tags", "--tls-verify=false", f"docker://{host}/tags-app", env=skopeo_env).stdout
        return json.loads(out)["Tags"] or []

    tags = list_tags()
    assert tags == sorted(same_manifest_tags + ["oci-variant"])

    # skopeo delete resolves the tag and DELETEs the manifest by digest.
    skopeo("delete", "--tls-verify=false", f"docker://{host}/tags-app:oci-variant", env=skopeo_env)
    proc = skopeo("inspect", "--tls-verify=false", f"docker://{host}/tags-app:oci-variant", check=False, env=skopeo_env)
    assert proc.returncode != 0
    assert "manifest unknown" in (proc.stdout + proc.stderr).lower()
    assert list_tags() == sorted(same_manifest_tags)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{host}/tags-app:a", env=skopeo_env).stdout)
    assert info["Digest"] == pushed

    # Deleting the shared manifest by digest removes all five tags in tags-app,
    # and nothing in my-app.
    skopeo("delete", "--tls-verify=false", f"docker://{host}/tags-app:v2", env=skopeo_env)
    assert list_tags() == []
    info = json.loads(skopeo("inspect", "--tls-verify=false", src, env=skopeo_env).stdout)
    assert info["Digest"] == pushed
    verify_image(berth, "my-app", "latest")


@dataclass
class LocalIndex:
    layout: Path
    ref: str
    digest: str
    data: bytes
    children: dict  # architecture -> (digest, bytes)


def _write_blob(layout: Path, data: bytes) -> dict:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _random_layer() -> tuple[bytes, str]:
    """A gzipped tar holding one random file; returns (blob, diff_id)."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = os.urandom(64 * 1024)
        info = tarfile.TarInfo("data/random.bin")
        info.size, info.mode, info.mtime = len(payload), 0o644, 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = tar_buf.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256_digest(tar_bytes)


def build_oci_index_layout(layout: Path, ref: str = "idx") -> LocalIndex:
    """An OCI image layout with an index of two tiny images (linux/amd64, linux/arm64)."""
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries, children = [], {}
    for arch in ("amd64", "arm64"):
        layer, diff_id = _random_layer()
        layer_desc = {"mediaType": OCI_LAYER_GZIP, **_write_blob(layout, layer)}
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            separators=(",", ":"),
        ).encode()
        config_desc = {"mediaType": OCI_CONFIG, **_write_blob(layout, config)}
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": [layer_desc]},
            indent=2,  # not the compact form on purpose: bytes, not JSON, must round trip
        ).encode()
        desc = {"mediaType": OCI_MANIFEST, **_write_blob(layout, manifest)}
        children[arch] = (desc["digest"], manifest)
        entries.append({**desc, "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=3).encode()
    index_desc = {"mediaType": OCI_INDEX, **_write_blob(layout, index)}
    top = {
        "schemaVersion": 2,
        "manifests": [{**index_desc, "annotations": {"org.opencontainers.image.ref.name": ref}}],
    }
    (layout / "index.json").write_text(json.dumps(top))
    return LocalIndex(layout, ref, index_desc["digest"], index, children)


def test_skopeo_multi_arch_index(berth, skopeo_env, tmp_path):
    berth.create_repository("multi")
    host = berth.registry_host()
    local = build_oci_index_layout(tmp_path / "mlayout")

    skopeo(
        "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
        f"oci:{local.layout}:{local.ref}", f"docker://{host}/multi:idx", env=skopeo_env,
    )

    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/multi:idx", text=False, env=skopeo_env).stdout
    assert raw == local.data
    r = verify_image(berth, "multi", "idx")
    assert r.headers["Content-Type"] == OCI_INDEX
    assert r.headers["Docker-Content-Digest"] == local.digest
    for arch, (digest, data) in local.children.items():
        assert get_manifest(berth, "multi", digest).content == data, arch

    # Platform selection through the index.
    info = json.loads(
        skopeo(
            "inspect", "--tls-verify=false", "--override-os", "linux", "--override-arch", "arm64",
            f"docker://{host}/multi:idx", env=skopeo_env,
        ).stdout
    )
    assert info["Architecture"] == "arm64"


def test_skopeo_multi_arch_docker_manifest_list(berth, skopeo_env, tmp_path):
    berth.create_repository("multi-docker")
    host = berth.registry_host()
    local = build_oci_index_layout(tmp_path / "mlayout")

    skopeo(
        "copy", "--all", "--format", "v2s2", "--dest-tls-verify=false",
        f"oci:{local.layout}:{local.ref}", f"docker://{host}/multi-docker:list", env=skopeo_env,
    )

    r = verify_image(berth, "multi-docker", "list")
    assert r.headers["Content-Type"] == DOCKER_LIST
    doc = json.loads(r.content)
    assert doc["mediaType"] == DOCKER_LIST
    assert sorted(m["platform"]["architecture"] for m in doc["manifests"]) == ["amd64", "arm64"]
    for child in doc["manifests"]:
        assert child["mediaType"] == DOCKER_V2
        c = get_manifest(berth, "multi-docker", child["digest"])
        assert c.headers["Content-Type"] == DOCKER_V2
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/multi-docker:list", text=False, env=skopeo_env).stdout
    assert raw == r.content


# ---------------------------------------------------------------------------
# oras-py (OCI artifacts and the referrers API)
# ---------------------------------------------------------------------------


class ArtifactRegistry(oras.provider.Registry):
    """oras-py's client, plus the manifest ``artifactType`` it cannot set itself."""

    artifact_type: Optional[str] = None

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)


def oras_push(berth, target: str, files: list, artifact_type: str, empty_config: Path, **kwargs):
    # ECR speaks Basic auth only: use oras-py's basic backend, logged in as AWS.
    client = ArtifactRegistry(hostname=f"127.0.0.1:{berth.port}", insecure=True, auth_backend="basic")
    client.auth.set_basic_auth("AWS", berth.registry_password())
    client.artifact_type = artifact_type
    # OCI 1.1 artifact guidance: config is the empty descriptor ({}), the kind of
    # artifact is in artifactType.
    resp = client.push(
        target=target,
        files=[str(f) for f in files],
        manifest_config=f"{empty_config}:{OCI_EMPTY}",
        disable_path_validation=True,
        quiet=True,
        **kwargs,
    )
    assert resp.status_code == 201, f"{resp.status_code} {resp.text}"
    return client, resp


@pytest.fixture
def empty_config(tmp_path) -> Path:
    path = tmp_path / "empty-config.json"
    path.write_bytes(b"{}")
    return path


def test_oras_artifact_roundtrip(berth, tmp_path, empty_config):
    berth.create_repository("artifacts")
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("hello from berth's test-suite\n" * 100)
    (src / "payload.bin").write_bytes(os.urandom(300 * 1024))
    files = [f"{src / 'notes.txt'}:text/plain", f"{src / 'payload.bin'}:application/octet-stream"]
    target = f"127.0.0.1:{berth.port}/artifacts:v1"

    client, resp = oras_push(berth, target, files, "application/vnd.example.thing.v1", empty_config)
    digest = resp.headers["Docker-Content-Digest"]

    r = get_manifest(berth, "artifacts", "v1", accept=(OCI_MANIFEST,))
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Type"] == OCI_MANIFEST
    manifest = json.loads(r.content)
    assert manifest["artifactType"] == "application/vnd.example.thing.v1"
    assert manifest["config"]["mediaType"] == OCI_EMPTY
    assert sorted(layer["mediaType"] for layer in manifest["layers"]) == ["application/octet-stream", "text/plain"]

    out = tmp_path / "out"
    pulled = client.pull(target=target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == ["notes.txt", "payload.bin"]
    for name in ("notes.txt", "payload.bin"):
        assert (out / name).read_bytes() == (src / name).read_bytes(), name


def test_oras_referrers(berth, tmp_path, empty_config):
    berth.create_repository("artifacts")
    (tmp_path / "image.txt").write_text("the subject\n")
    (tmp_path / "sig.txt").write_text("a signature\n")
    (tmp_path / "sbom.json").write_text('{"sbom": true}\n')
    base = f"127.0.0.1:{berth.port}/artifacts"

    _, resp = oras_push(berth, f"{base}:image", [tmp_path / "image.txt"], "application/vnd.example.image.v1", empty_config)
    subject_digest = resp.headers["Docker-Content-Digest"]
    subject_bytes = get_manifest(berth, "artifacts", subject_digest).content
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_bytes))

    sig_type, sbom_type = "application/vnd.example.signature.v1", "application/vnd.example.sbom.v1"
    _, sig_resp = oras_push(
        berth, f"{base}:sig", [tmp_path / "sig.txt"], sig_type, empty_config,
        subject=subject, manifest_annotations={"org.example.note": "signed"},
    )
    assert sig_resp.headers.get("OCI-Subject") == subject_digest
    sig_digest = sig_resp.headers["Docker-Content-Digest"]
    sig_size = len(get_manifest(berth, "artifacts", sig_digest).content)
    _, sbom_resp = oras_push(berth, f"{base}:sbom", [tmp_path / "sbom.json"], sbom_type, empty_config, subject=subject)
    sbom_digest = sbom_resp.headers["Docker-Content-Digest"]

    url = f"{berth.url}/v2/artifacts/referrers/{subject_digest}"
    r = requests.get(url, timeout=30, auth=berth.registry_auth())
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(OCI_INDEX)
    index = r.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sig_digest, sbom_digest}
    sig = by_digest[sig_digest]
    assert sig["mediaType"] == OCI_MANIFEST
    assert sig["artifactType"] == sig_type
    assert sig["size"] == sig_size
    assert sig["annotations"]["org.example.note"] == "signed"
    assert by_digest[sbom_digest]["artifactType"] == sbom_type

    # Filtering by artifactType.
    r = requests.get(url, params={"artifactType": sig_type}, timeout=30, auth=berth.registry_auth())
    assert r.status_code == 200, r.text
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sig_digest]

    # A digest nothing refers to has an empty (but valid) referrers index.
    r = requests.get(f"{berth.url}/v2/artifacts/referrers/{sig_digest}", timeout=30, auth=berth.registry_auth())
    assert r.status_code == 200, r.text
    assert r.json()["manifests"] == []
