"""Real-format fixtures for the vulnerability-scanning tests, built in pure Python.

* Layers: tar archives (files, directories, symlinks, hard links, OCI whiteouts and
  opaque directories) compressed with gzip or zstd, or left plain; hostile layers
  (path traversal, escaping links, a gzip bomb, a truncated tar, bytes that are no tar).
* Images: a config with the layers' diff_ids, pushed through the registry API (docker's
  path) or through ECR's layer-upload API and PutImage.
* Package databases as the distributions write them: a dpkg ``status`` file, distroless
  ``status.d/`` entries, an apk ``installed`` database, and an rpm SQLite database made
  by rpm itself (rpmbuild + ``rpm --justdb``), not by hand.
* OSV records (schema 1.6) and the three shapes ``berth admin vulndb import`` reads: an
  ``all.zip`` of ``<ID>.json`` files, a directory of them, one ``.json`` file.

Everything is deterministic except the image config's nonce (so that each push is a new
image digest, with a scan quota of its own).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Sequence

import pytest

from ocihelpers import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Manifest,
    Registry,
    descriptor,
    image_manifest_dict,
    json_bytes,
    push_manifest,
    sha256,
    upload_blob,
)

README_HINT = "run the README test command (scripts/test), which installs the test dependencies"

OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

# A fixed mtime keeps layer digests reproducible across runs.
MTIME = 1_700_000_000

SCAN_COMPLETE = "The scan was completed successfully."
UNSUPPORTED_PREFIX = (
    "UnsupportedImageError: The operating system and/or package manager of the image is not supported."
)

# ECR's severities, most severe first: the order findings are listed in.
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


# =============================================================================== tar layers


class Entry(NamedTuple):
    """One member of a layer tar: its header and, for regular files, its bytes."""

    info: tarfile.TarInfo
    data: Optional[bytes] = None


def _info(path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(path)
    ti.type = kind
    ti.mode = mode
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def file(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    data = data.encode() if isinstance(data, str) else data
    ti = _info(path, tarfile.REGTYPE, mode)
    ti.size = len(data)
    return Entry(ti, data)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(_info(path, tarfile.DIRTYPE, mode))


def symlink(path: str, target: str) -> Entry:
    ti = _info(path, tarfile.SYMTYPE, 0o777)
    ti.linkname = target
    return Entry(ti)


def hardlink(path: str, target: str) -> Entry:
    """A hard link; ``target`` is a path in the archive (tar's convention), not relative."""
    ti = _info(path, tarfile.LNKTYPE, 0o644)
    ti.linkname = target
    return Entry(ti)


def whiteout(path: str) -> Entry:
    """OCI whiteout: hides ``path`` of the layers below (``dir/.wh.name``, empty file)."""
    head, _, name = path.rstrip("/").rpartition("/")
    return file(f"{head}/.wh.{name}" if head else f".wh.{name}", b"", mode=0o600)


def opaque(dir_path: str) -> Entry:
    """OCI opaque marker: the layers below contribute nothing under ``dir_path``."""
    return file(f"{dir_path.rstrip('/')}/.wh..wh..opq", b"", mode=0o600)


def parents(*paths: str, prefix: str = "") -> list[Entry]:
    """Directory entries for every ancestor of ``paths``, parents first (as docker writes)."""
    seen: list[str] = []
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.append(d)
    return [directory(prefix + d) for d in seen]


def tree(files: dict[str, bytes | str], prefix: str = "") -> list[Entry]:
    """Directories then files for a {path: content} map. ``prefix`` "./" writes names the
    way rules_pkg (distroless) does."""
    return parents(*files, prefix=prefix) + [file(prefix + p, c) for p, c in files.items()]


def tar_bytes(entries: Iterable[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            tf.addfile(e.info, io.BytesIO(e.data) if e.data is not None else None)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd_bytes(data: bytes) -> bytes:
    """Zstandard frame of ``data``: the zstandard module when importable, else the zstd CLI
    (Debian package zstd, installed by scripts/test)."""
    try:
        import zstandard  # type: ignore

        return zstandard.ZstdCompressor(level=3).compress(data)
    except ImportError:
        pass
    exe = shutil.which("zstd")
    if exe is None:
        pytest.fail(f"neither the zstandard module nor the zstd CLI is installed; {README_HINT}")
    proc = subprocess.run([exe, "-q", "-c", "-3", "-"], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


class Layer(NamedTuple):
    blob: bytes  # what is uploaded
    media_type: str
    diff_id: str  # digest of the uncompressed tar (the config's rootfs.diff_ids)

    @property
    def digest(self) -> str:
        return sha256(self.blob)


def layer(entries: Iterable[Entry], compression: Optional[str] = "gzip", fmt: int = tarfile.PAX_FORMAT) -> Layer:
    """A layer of ``entries``; compression is "gzip", "zstd", "zstd-frames" (several
    frames) or None (plain tar)."""
    raw = tar_bytes(entries, fmt)
    return compressed_layer(raw, compression)


def compressed_layer(raw: bytes, compression: Optional[str] = "gzip") -> Layer:
    if compression == "gzip":
        return Layer(gzip_bytes(raw), OCI_LAYER, sha256(raw))
    if compression == "zstd":
        return Layer(zstd_bytes(raw), OCI_LAYER_ZSTD, sha256(raw))
    if compression == "zstd-frames":
        # Two frames with a skippable frame between them, as zstd:chunked writes layers.
        half = len(raw) // 2
        skippable = bytes([0x50, 0x2A, 0x4D, 0x18]) + (4).to_bytes(4, "little") + b"meta"
        return Layer(zstd_bytes(raw[:half]) + skippable + zstd_bytes(raw[half:]), OCI_LAYER_ZSTD, sha256(raw))
    assert compression is None, compression
    return Layer(raw, OCI_LAYER_TAR, sha256(raw))


# ------------------------------------------------------------------------- hostile layers
# Each returns a Layer whose scan must FAIL. `outside` is a host directory the test made
# (absolute, e.g. /tmp/berth-escape-XXXX): with enough "../" any relative path reaches the
# host's root from wherever the scanner unpacks, so a naive extractor would write there,
# and the test can check that nothing did.


def _up(n: int = 24) -> str:
    return "../" * n


def traversal_layer(outside: str) -> Layer:
    return layer([directory("etc"), file(f"etc/{_up()}{outside.lstrip('/')}/traversal", "written by a layer\n")])


def symlink_escape_layer(outside: str) -> Layer:
    """A directory symlink out of the image, then a file written through it (the
    classic "symlink then write" escape)."""
    return layer([
        directory("etc"),
        symlink("etc/escape", f"{_up()}{outside.lstrip('/')}"),
        file("etc/escape/through-symlink", "written through a symlink\n"),
    ])


def hardlink_escape_layer(outside: str) -> Layer:
    """A hard link to a host file: an extractor that links it could later overwrite it."""
    return layer([directory("etc"), hardlink("etc/shadow-copy", f"{_up()}{outside.lstrip('/')}/secret")])


GZIP_BOMB_BYTES = 2 << 30  # 2 GiB of zeros in one file


@functools.lru_cache(maxsize=1)
def gzip_bomb_layer() -> Layer:
    """A single-member gzip (~2 MB) of a tar holding one 2 GiB file of zeros (ratio ~1000).

    Built in about two seconds: after a Z_FULL_FLUSH zlib's state is the same whatever it
    compressed before, so 1 MiB of zeros always compresses to the same bytes, and those
    bytes are repeated instead of compressing 2 GiB. The CRC-32 and the diff_id are
    computed over the real uncompressed stream."""
    chunk = bytes(1 << 20)
    header = tarfile.TarInfo("var/cache/bomb.bin")
    header.size = GZIP_BOMB_BYTES
    header.mtime = MTIME
    header_bytes = header.tobuf(format=tarfile.GNU_FORMAT)
    trailer = bytes(1024)  # two zero blocks end the archive (the file is a multiple of 512)

    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; we write gzip's framing
    head = comp.compress(header_bytes) + comp.flush(zlib.Z_FULL_FLUSH)
    body = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(trailer) + comp.flush(zlib.Z_FINISH)

    crc = zlib.crc32(header_bytes)
    h = hashlib.sha256(header_bytes)
    for _ in range(GZIP_BOMB_BYTES // len(chunk)):
        crc = zlib.crc32(chunk, crc)
        h.update(chunk)
    crc = zlib.crc32(trailer, crc)
    h.update(trailer)
    total = len(header_bytes) + GZIP_BOMB_BYTES + len(trailer)

    gz_header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"  # deflate, no mtime, max compression
    gz_trailer = crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little")
    blob = gz_header + head + body * (GZIP_BOMB_BYTES // len(chunk)) + tail + gz_trailer
    return Layer(blob, OCI_LAYER, "sha256:" + h.hexdigest())


def truncated_tar_layer() -> Layer:
    """A complete, valid gzip stream of a tar that stops in the middle of a file's data."""
    big = hashlib.sha256(b"seed").digest() * (64 * 1024 // 32)  # 64 KiB, deterministic
    raw = tar_bytes(tree({"usr/share/doc/notes.txt": "a small file first\n", "usr/lib/libbig.so.1": big}))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        member = tf.getmember("usr/lib/libbig.so.1")
        cut = member.offset_data + len(big) // 3
    return compressed_layer(raw[:cut], "gzip")


def not_a_tar_layer(compression: Optional[str] = None) -> Layer:
    """Bytes that are no tar. The first byte is neither gzip's (1f) nor zstd's (28) magic,
    so a plain blob is read as a (broken) plain tar, not as a compressed stream."""
    junk = b"\x42" + hashlib.sha512(b"not a tar").digest() * 64
    return compressed_layer(junk, compression)


# ==================================================================================== images


def image_config(layers: Sequence[Layer], docker: bool = False) -> bytes:
    """A realistic image config; the nonce makes every push a new image digest."""
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-03-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"nonce": os.urandom(8).hex()},
        },
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
        "history": [{"created": "2024-03-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if docker:
        cfg["docker_version"] = "24.0.0"
    return json_bytes(cfg)


def image_manifest(layers: Sequence[Layer], config: bytes, docker: bool = False) -> Manifest:
    if docker:
        assert all(l.media_type == OCI_LAYER for l in layers), "docker manifests carry gzip layers only"
    m = image_manifest_dict(
        descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        [descriptor(DOCKER_LAYER if docker else l.media_type, l.blob) for l in layers],
        docker=docker,
    )
    return Manifest(json_bytes(m), DOCKER_MANIFEST if docker else OCI_MANIFEST)


def push_layers(reg: Registry, repo: str, layers: Sequence[Layer], tag: Optional[str] = None,
                docker: bool = False) -> str:
    """Push an image of ``layers`` through the registry API (as docker does); its digest."""
    config = image_config(layers, docker)
    upload_blob(reg, repo, config)
    for l in layers:
        upload_blob(reg, repo, l.blob)
    m = image_manifest(layers, config, docker)
    push_manifest(reg, repo, tag or m.digest, m)
    return m.digest


def put_layers_via_api(ecr, repo: str, layers: Sequence[Layer], tag: Optional[str] = None) -> str:
    """Push through ECR's API: InitiateLayerUpload/UploadLayerPart/CompleteLayerUpload for
    each blob, then PutImage. Returns the image digest."""
    config = image_config(layers)
    for blob in [config] + [l.blob for l in layers]:
        up = ecr.initiate_layer_upload(repositoryName=repo)
        ecr.upload_layer_part(repositoryName=repo, uploadId=up["uploadId"], partFirstByte=0,
                              partLastByte=len(blob) - 1, layerPartBlob=blob)
        ecr.complete_layer_upload(repositoryName=repo, uploadId=up["uploadId"], layerDigests=[sha256(blob)])
    m = image_manifest(layers, config)
    kw = {"imageTag": tag} if tag else {}
    out = ecr.put_image(repositoryName=repo, imageManifest=m.body.decode(), imageManifestMediaType=m.media_type, **kw)
    assert out["image"]["imageId"]["imageDigest"] == m.digest
    return m.digest


# ================================================================================ os-release

DEBIAN_12_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU_2204_OS_RELEASE = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

ALPINE_318_OS_RELEASE = """\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.18.4
PRETTY_NAME="Alpine Linux v3.18"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"""

RHEL_9_OS_RELEASE = """\
NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
DOCUMENTATION_URL="https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/9"
BUG_REPORT_URL="https://bugzilla.redhat.com/"

REDHAT_BUGZILLA_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_BUGZILLA_PRODUCT_VERSION=9.3
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
"""

ALMALINUX_9_OS_RELEASE = """\
NAME="AlmaLinux"
VERSION="9.3 (Shamrock Pampas Cat)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.3 (Shamrock Pampas Cat)"
ANSI_COLOR="0;34"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
HOME_URL="https://almalinux.org/"
DOCUMENTATION_URL="https://wiki.almalinux.org/"
BUG_REPORT_URL="https://bugs.almalinux.org/"
"""

AMAZON_2023_OS_RELEASE = """\
NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.3.20240122"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2028-03-15"
"""


# ===================================================================================== dpkg


class Deb(NamedTuple):
    """An installed Debian binary package. ``source`` is the Source: field as dpkg writes
    it: absent when the source has the binary's name, "name" when only the name differs,
    "name (version)" when the source version differs too (binNMUs, epochs)."""

    name: str
    version: str
    source: Optional[str] = None
    status: str = "install ok installed"
    arch: str = "amd64"
    section: str = "libs"
    multi_arch: Optional[str] = "same"
    depends: Optional[str] = "libc6 (>= 2.34)"
    conffiles: Sequence[str] = ()


def _deb_description(p: Deb) -> str:
    return (
        f"Description: {p.name} - package of the test image\n"
        f" This is the long description of {p.name}. It spans several lines, as\n"
        " real descriptions do.\n"
        " .\n"
        " A paragraph break above is written as a lone dot.\n"
    )


def dpkg_paragraph(p: Deb) -> str:
    """One package as /var/lib/dpkg/status has it (field order as dpkg writes them)."""
    out = [f"Package: {p.name}", f"Status: {p.status}", "Priority: optional", f"Section: {p.section}",
           "Installed-Size: 1234", "Maintainer: Debian Test Team <test@lists.debian.org>",
           f"Architecture: {p.arch}"]
    if p.multi_arch:
        out.append(f"Multi-Arch: {p.multi_arch}")
    if p.source:
        out.append(f"Source: {p.source}")
    out.append(f"Version: {p.version}")
    if p.depends:
        out.append(f"Depends: {p.depends}")
    if p.conffiles:
        out.append("Conffiles:")
        out += [f" {c} {hashlib.md5(c.encode()).hexdigest()}" for c in p.conffiles]
    text = "\n".join(out) + "\n" + _deb_description(p)
    return text + "Homepage: https://www.example.org/\n"


def dpkg_status(pkgs: Sequence[Deb]) -> bytes:
    """/var/lib/dpkg/status: paragraphs separated by one blank line."""
    return "\n".join(dpkg_paragraph(p) for p in pkgs).encode()


def distroless_entry(p: Deb) -> str:
    """A distroless ``/var/lib/dpkg/status.d/<name>`` file: the package's control data,
    with no Status: field (rules_distroless copies control files; see trivy's testdata)."""
    out = [f"Package: {p.name}", f"Version: {p.version}", f"Architecture: {p.arch}",
           "Maintainer: Debian Test Team <test@lists.debian.org>", "Installed-Size: 1234"]
    if p.depends:
        out.append(f"Depends: {p.depends}")
    out += [f"Section: {p.section}", "Priority: optional"]
    if p.multi_arch:
        out.append(f"Multi-Arch: {p.multi_arch}")
    out.append("Homepage: https://www.example.org/")
    text = "\n".join(out) + "\n" + _deb_description(p)
    if p.source:
        text += f"Source: {p.source}\n"
    return text


def distroless_status_d(pkgs: Sequence[Deb]) -> dict[str, str]:
    """{path: content} for status.d: one file per package plus its ``.md5sums`` (which is
    no package and must not be read as one)."""
    files: dict[str, str] = {}
    for p in pkgs:
        files[f"var/lib/dpkg/status.d/{p.name}"] = distroless_entry(p)
        files[f"var/lib/dpkg/status.d/{p.name}.md5sums"] = (
            f"{hashlib.md5(p.name.encode()).hexdigest()}  usr/share/doc/{p.name}/copyright\n"
        )
    return files


# ====================================================================================== apk


class Apk(NamedTuple):
    name: str  # P:
    version: str  # V:
    origin: str  # o: the source package (aport) the advisories name
    arch: str = "x86_64"


def apk_installed(pkgs: Sequence[Apk]) -> bytes:
    """/lib/apk/db/installed: one block of "X:value" lines per package, blank-line
    separated, with the package's files (F: dir, R: file, a: acl, Z: checksum)."""
    blocks = []
    for i, p in enumerate(pkgs):
        q = "Q1" + hashlib.sha1(f"{p.name}-{p.version}".encode()).hexdigest()[:26] + "="
        blocks.append("\n".join([
            f"C:{q}",
            f"P:{p.name}",
            f"V:{p.version}",
            f"A:{p.arch}",
            "S:123456",
            "I:456789",
            f"T:{p.name} test package",
            "U:https://www.example.org/",
            "L:MIT",
            f"o:{p.origin}",
            "m:Test Maintainer <test@alpinelinux.org>",
            f"t:{1690000000 + i}",
            f"c:{hashlib.sha1(p.origin.encode()).hexdigest()}",
            "D:so:libc.musl-x86_64.so.1",
            f"p:so:{p.name}.so.1=1",
            "F:usr",
            "F:usr/lib",
            f"R:{p.name}.so.1",
            "a:0:0:755",
            f"Z:{q}",
        ]) + "\n")
    return "\n".join(blocks).encode()


# ====================================================================================== rpm


class Rpm(NamedTuple):
    name: str  # the binary package (what Red Hat's advisories name)
    version: str
    release: str
    epoch: Optional[int] = None
    source: Optional[str] = None  # source package name (SOURCERPM); default: name
    arch: str = "x86_64"

    @property
    def evr(self) -> str:
        return f"{self.epoch}:{self.version}-{self.release}" if self.epoch else f"{self.version}-{self.release}"


def _rpm_tools() -> tuple[str, str]:
    rpm, rpmbuild = shutil.which("rpm"), shutil.which("rpmbuild")
    if not rpm or not rpmbuild:
        pytest.fail(f"rpm and rpmbuild (Debian package rpm) are not installed; {README_HINT}")
    return rpm, rpmbuild


def _spec(source: str, pkgs: Sequence[Rpm]) -> str:
    first = pkgs[0]
    lines = [
        f"Name: {source}",
        f"Version: {first.version}",
        f"Release: {first.release}",
        "Summary: source package of the test image",
        "License: MIT",
    ]
    if first.epoch is not None:
        lines.append(f"Epoch: {first.epoch}")
    lines += ["%description", "Test source package.", ""]
    for p in pkgs:
        # Every binary is a "-n" subpackage so that binaries of one source share its
        # SOURCERPM, as on a real distribution; the main package is built only if listed.
        sub = "" if p.name == source else f" -n {p.name}"
        if sub:
            lines += [f"%package{sub}", f"Summary: {p.name} of the test image", ""]
        lines += [f"%description{sub}", f"{p.name} of the test image.", "", f"%files{sub}", ""]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=32)
def rpmdb_sqlite(pkgs: tuple[Rpm, ...], dbpath: str = "/var/lib/rpm") -> bytes:
    """The bytes of an rpmdb.sqlite holding ``pkgs``, written by rpm itself: one spec per
    source package built with rpmbuild (empty packages, no scriptlets), then
    ``rpm --root R --dbpath DBPATH --initdb`` and ``rpm -i --justdb --nodeps``.

    Debian's rpm 4.18 uses the sqlite backend by default (``%_db_backend`` = sqlite); it is
    forced anyway. rpm leaves the database in WAL mode (as on RHEL 9) with an empty -wal
    file; only rpmdb.sqlite goes into the image, so any WAL content is checkpointed first.
    """
    rpm, rpmbuild = _rpm_tools()
    by_source: dict[str, list[Rpm]] = {}
    for p in pkgs:
        by_source.setdefault(p.source or p.name, []).append(p)
    with tempfile.TemporaryDirectory(prefix="berth-rpm-") as tmp:
        tmp = Path(tmp)
        defines = ["--define", f"_topdir {tmp / 'top'}", "--define", "_build_id_links none",
                   "--define", "debug_package %{nil}", "--define", "_db_backend sqlite"]
        for source, members in by_source.items():
            evrs = {(m.epoch, m.version, m.release, m.arch) for m in members}
            assert len(evrs) == 1, f"binaries of {source} must share epoch, version, release and arch"
            spec = tmp / f"{source}.spec"
            spec.write_text(_spec(source, members))
            proc = subprocess.run([rpmbuild, "-bb", "--quiet", "--target", members[0].arch, *defines, str(spec)],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"rpmbuild failed:\n{proc.stdout}\n{proc.stderr}"
        built = sorted(str(p) for p in (tmp / "top" / "RPMS").rglob("*.rpm"))
        assert len(built) == len(pkgs), built
        root = tmp / "root"
        root.mkdir()
        base = [rpm, "--root", str(root), "--dbpath", dbpath, "--define", "_db_backend sqlite"]
        for args in (["--initdb"],
                     ["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers", "--nosignature",
                      "--nodigest", "--ignorearch", "--ignoreos", *built]):
            proc = subprocess.run(base + args, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"rpm {' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}"
        db = root / dbpath.lstrip("/") / "rpmdb.sqlite"
        wal = db.with_name("rpmdb.sqlite-wal")
        if wal.exists() and wal.stat().st_size:
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
        return db.read_bytes()


def rpm_query(db_bytes: bytes, dbpath: str = "/var/lib/rpm") -> list[str]:
    """``rpm -qa`` over a database's bytes (to check a fixture): NAME EPOCH:VERSION-RELEASE SOURCERPM."""
    rpm, _ = _rpm_tools()
    with tempfile.TemporaryDirectory(prefix="berth-rpmq-") as tmp:
        d = Path(tmp) / dbpath.lstrip("/")
        d.mkdir(parents=True)
        (d / "rpmdb.sqlite").write_bytes(db_bytes)
        proc = subprocess.run(
            [rpm, "--root", tmp, "--dbpath", dbpath, "-qa", "--qf",
             "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}\\n"],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return sorted(proc.stdout.splitlines())


# ====================================================================================== OSV


def affected(ecosystem: str, name: str, *, introduced: Optional[str] = "0", fixed: Optional[str] = None,
             last_affected: Optional[str] = None, versions: Optional[Sequence[str]] = None,
             ranges: bool = True) -> dict:
    """One ``affected`` entry: an ECOSYSTEM range (introduced, then fixed or last_affected)
    and/or an explicit ``versions`` list. ``ranges=False`` leaves the range out."""
    a: dict = {"package": {"ecosystem": ecosystem, "name": name}}
    if ranges:
        events: list[dict] = [{"introduced": introduced}] if introduced is not None else []
        if fixed is not None:
            events.append({"fixed": fixed})
        if last_affected is not None:
            events.append({"last_affected": last_affected})
        a["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    if versions is not None:
        a["versions"] = list(versions)
    return a


def osv(id: str, *affects: dict, modified: str, published: str = "2024-01-01T00:00:00Z",
        aliases: Sequence[str] = (), upstream: Optional[Sequence[str]] = None, summary: Optional[str] = None,
        details: Optional[str] = None, cvss: Optional[str] = None, severity: Optional[list] = None,
        references: Optional[Sequence[str]] = None, database_specific: Optional[dict] = None) -> dict:
    """An OSV record (schema 1.6). ``cvss`` adds a CVSS_V3 severity; ``severity`` gives the
    whole list instead; ``references`` are URLs (typed ADVISORY, then WEB)."""
    r: dict = {"schema_version": "1.6.0", "id": id, "modified": modified, "published": published,
               "aliases": list(aliases)}
    if upstream is not None:
        r["upstream"] = list(upstream)
    if summary is not None:
        r["summary"] = summary
    r["details"] = details if details is not None else f"Details of {id}."
    if severity is not None:
        r["severity"] = severity
    elif cvss is not None:
        r["severity"] = [{"type": "CVSS_V3", "score": cvss}]
    r["affected"] = list(affects)
    if references:
        r["references"] = [{"type": "ADVISORY" if i == 0 else "WEB", "url": u} for i, u in enumerate(references)]
    if database_specific is not None:
        r["database_specific"] = database_specific
    return r


def write_all_zip(path: Path, records: Sequence[dict]) -> Path:
    """OSV's per-ecosystem dump: a zip of ``<ID>.json`` at its root."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for r in records:
            z.writestr(f"{r['id']}.json", json.dumps(r, indent=2))
    return path


def write_json_dir(path: Path, records: Sequence[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for r in records:
        (path / f"{r['id']}.json").write_text(json.dumps(r, indent=2))
    return path


def write_json_file(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record, indent=2))
    return path


def import_vulndb(berth, *paths: Path, extra: Sequence[str] = ()) -> list[str]:
    """``berth admin vulndb import PATHS [EXTRA]``; returns its non-empty output lines."""
    out = berth.admin("vulndb", "import", *map(str, paths), *extra, timeout=300).stdout
    return [l for l in out.splitlines() if l.strip()]


# ============================================================================ scan results


def wait_for_scan(ecr, repo: str, digest: str, timeout: float = 120.0) -> dict:
    """Poll DescribeImageScanFindings until the scan is no longer IN_PROGRESS (a condition
    with a deadline, polled every 0.1 s); returns that first page."""
    deadline = time.monotonic() + timeout
    while True:
        out = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest})
        if out["imageScanStatus"]["status"] != "IN_PROGRESS":
            return out
        assert time.monotonic() < deadline, f"the scan of {repo}@{digest} still IN_PROGRESS after {timeout}s"
        time.sleep(0.1)


def all_findings(ecr, repo: str, digest: str, page_size: int = 100) -> list[dict]:
    findings: list[dict] = []
    kw: dict = {}
    while True:
        out = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest},
                                               maxResults=page_size, **kw)
        findings += out["imageScanFindings"]["findings"]
        if "nextToken" not in out:
            return findings
        kw = {"nextToken": out["nextToken"]}


def attributes(finding: dict) -> dict[str, str]:
    """A finding's attributes as a dict (each key must appear once)."""
    keys = [a["key"] for a in finding.get("attributes", [])]
    assert len(keys) == len(set(keys)), f"duplicate attribute keys in {finding}"
    return {a["key"]: a["value"] for a in finding.get("attributes", [])}


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


# ============================================================================ language packages
# As each language's own tools leave them: a wheel's METADATA, an egg's PKG-INFO, npm's
# package.json and package-lock.json, Cargo.lock, a jar made by the JDK's `jar` (with a
# jar nested in it, as Spring Boot ships), and a Go binary built by the Go toolchain.


def python_metadata(name: str, version: str, egg: bool = False) -> str:
    """A wheel's ``METADATA`` (or an egg's ``PKG-INFO``): headers, a blank line, the body."""
    version_of_metadata = "1.2" if egg else "2.1"
    return (f"Metadata-Version: {version_of_metadata}\nName: {name}\nVersion: {version}\n"
            f"Summary: {name} for the tests\nLicense: BSD\n\nName: not-a-header\n{name} long description.\n")


def npm_manifest(name: str, version: str) -> str:
    return json.dumps({"name": name, "version": version, "main": "index.js", "license": "MIT",
                       "dependencies": {}}, indent=2)


def npm_lockfile(app: str, packages: dict[str, tuple[str, bool]]) -> str:
    """package-lock.json v3: ``packages`` maps install paths to (version, dev)."""
    lock: dict = {"name": app, "version": "1.0.0", "lockfileVersion": 3, "requires": True,
                  "packages": {"": {"name": app, "version": "1.0.0"}}}
    for path, (version, dev) in packages.items():
        entry: dict = {"version": version, "resolved": f"https://registry.npmjs.org/{path}.tgz",
                       "integrity": "sha512-AAAA"}
        if dev:
            entry["dev"] = True
        lock["packages"][path] = entry
    return json.dumps(lock, indent=2)


def cargo_lock(app: str, crates: dict[str, str]) -> str:
    out = "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 3\n"
    out += f'\n[[package]]\nname = "{app}"\nversion = "0.1.0"\ndependencies = [\n'
    out += "".join(f' "{c}",\n' for c in crates) + "]\n"
    for name, version in crates.items():
        out += (f'\n[[package]]\nname = "{name}"\nversion = "{version}"\n'
                'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
                f'checksum = "{hashlib.sha256(name.encode()).hexdigest()}"\n')
    return out


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if not exe:
        pytest.fail(f"`{name}` not found; {README_HINT}")
    return exe


def jar_file(workdir: Path, group: str, artifact: str, version: str,
             nested: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """A jar made by the JDK's ``jar`` tool, with Maven's ``pom.properties`` (as the
    maven-archiver writes it) and ``nested`` jars under ``BOOT-INF/lib/``."""
    root = workdir / f"{artifact}-{version}"
    props = root / "META-INF" / "maven" / group / artifact
    props.mkdir(parents=True)
    (props / "pom.properties").write_text(
        f"#Created by Apache Maven 3.8.7\ngroupId={group}\nartifactId={artifact}\nversion={version}\n")
    (root / "Main.class").write_bytes(b"\xca\xfe\xba\xbe" + bytes(60))
    for name, data in nested:
        lib = root / "BOOT-INF" / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        (lib / name).write_bytes(data)
    out = workdir / f"{artifact}-{version}.jar"
    subprocess.run([_tool("jar"), "--create", "--file", str(out), "-C", str(root), "."], check=True,
                   capture_output=True, timeout=120)
    return out.read_bytes()


def go_binary(workdir: Path, deps: dict[str, str]) -> tuple[bytes, str]:
    """A static Go program built by the installed Go toolchain, importing one package of
    each module of ``deps`` (module → version), vendored so that nothing is fetched.
    Returns the binary and the toolchain's version (``go1.19.8``)."""
    go = _tool("go")
    src = workdir / "goapp"
    (src / "vendor").mkdir(parents=True)
    requires = "".join(f"\t{m} {v}\n" for m, v in deps.items())
    (src / "go.mod").write_text(f"module example.com/app\n\ngo 1.19\n\nrequire (\n{requires})\n")
    modules_txt, imports, uses = "", "", ""
    for i, (module, version) in enumerate(deps.items()):
        pkg = f"{module}/p{i}"
        modules_txt += f"# {module} {version}\n## explicit\n{pkg}\n"
        (src / "vendor" / pkg).mkdir(parents=True)
        (src / "vendor" / pkg / "p.go").write_text(f'package p{i}\n\nconst Name = "{module}"\n')
        imports += f'\tp{i} "{pkg}"\n'
        uses += f"\tfmt.Println(p{i}.Name)\n"
    (src / "vendor" / "modules.txt").write_text(modules_txt)
    (src / "main.go").write_text(f'package main\n\nimport (\n\t"fmt"\n{imports})\n\nfunc main() {{\n{uses}}}\n')
    env = {**os.environ, "GOFLAGS": "-mod=vendor", "GOPROXY": "off", "CGO_ENABLED": "0",
           "GOCACHE": str(workdir / "gocache"), "GOPATH": str(workdir / "gopath"), "GOTOOLCHAIN": "local"}
    subprocess.run([go, "build", "-o", "app", "."], cwd=src, env=env, check=True, capture_output=True, timeout=300)
    version = subprocess.run([go, "env", "GOVERSION"], env=env, check=True, capture_output=True, text=True,
                             timeout=60).stdout.strip()
    return (src / "app").read_bytes(), version


def enhanced_findings(ecr, repo: str, digest: str, page_size: int = 100) -> list[dict]:
    findings: list[dict] = []
    kw: dict = {}
    while True:
        out = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest},
                                               maxResults=page_size, **kw)
        assert "findings" not in out["imageScanFindings"], "an enhanced scan lists enhancedFindings only"
        findings += out["imageScanFindings"]["enhancedFindings"]
        if "nextToken" not in out:
            return findings
        kw = {"nextToken": out["nextToken"]}


def auditable_binary(workdir: Path, crates: dict[str, str]) -> bytes:
    """An ELF executable (built by gcc) carrying what `cargo auditable` embeds: the crate
    list as zlib-compressed JSON in a `.dep-v0` section, added by binutils' objcopy."""
    src = workdir / "rustapp"
    src.mkdir(parents=True)
    (src / "main.c").write_text("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n")
    subprocess.run([_tool("gcc"), "-O1", "-o", str(src / "plain"), str(src / "main.c")], check=True,
                   capture_output=True, timeout=120)
    packages = [{"name": "rustapp", "version": "0.1.0", "source": "local",
                 "dependencies": list(range(1, len(crates) + 1)), "root": True}]
    packages += [{"name": n, "version": v, "source": "crates.io"} for n, v in crates.items()]
    (src / "deps.z").write_bytes(zlib.compress(json.dumps({"packages": packages}).encode(), 9))
    subprocess.run([_tool("objcopy"), "--add-section", f".dep-v0={src / 'deps.z'}",
                    "--set-section-flags", ".dep-v0=alloc,readonly", str(src / "plain"), str(src / "app")],
                   check=True, capture_output=True, timeout=120)
    return (src / "app").read_bytes()
