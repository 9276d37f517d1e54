"""The first hour of a new user, and what an operator meets next.

* ``--public-url`` decides every address Berth advertises; by default the served scheme.
* ``berth --help`` is current; user errors are one line, never a backtrace.
* ``berth admin hosts [--install]`` gives the hosts lines for every account and region.
* ``berth admin assume-role --as-service`` acts as an AWS service (the tutorials' ECS
  task execution role), refused unless the trust policy names the service.
* Secrets at rest: the data directory is 0700, its files 0600, and neither the SQLite
  file nor a PostgreSQL dump holds a secret access key or the token key in clear.
* A full disk: a failed upload releases its space at once, the answer names the cause
  (507), and Berth goes on once space is there.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import boto3
import pytest
import requests

from ocihelpers import MiB, Registry, sha256, unique_name, upload_blob

ECS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "", "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def run_berth(berth_bin, *args, env=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(berth_bin), *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **(env or {})})
    if check:
        assert r.returncode == 0, r.stderr
    return r


# ---------------------------------------------------------------- advertised addresses


def test_public_url_decides_every_advertised_address(berth_factory):
    b = berth_factory(extra_args=["--public-url", "https://registry.example.test"])
    ecr = b.ecr()
    repo = ecr.create_repository(repositoryName="app")["repository"]
    host = "000000000000.dkr.ecr.us-east-1.registry.example.test"
    assert repo["repositoryUri"] == f"{host}/app"
    data = ecr.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == f"https://{host}"
    r = requests.get(f"{b.url}/v2/", headers={"Host": host}, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Basic realm="https://{host}/"')
    reg = Registry(b.url, auth=b.registry_auth())
    digest = upload_blob(reg, "app", b"layer")
    url = ecr.get_download_url_for_layer(repositoryName="app", layerDigest=digest)["downloadUrl"]
    if b.blobs_url:
        # Object storage presigns its own URLs (their address: tests/test_object_storage.py).
        assert "X-Amz-Signature=" in url
    else:
        assert url.startswith(f"https://{host}/v2/app/blobs/{digest}?")


def test_the_default_port_of_a_scheme_is_not_advertised(berth_factory):
    b = berth_factory(extra_args=["--public-url", "http://localhost:80"])
    repo = b.ecr().create_repository(repositoryName="app")["repository"]
    assert repo["repositoryUri"] == "000000000000.dkr.ecr.us-east-1.localhost/app"


def test_a_public_url_must_be_scheme_and_domain(berth_bin, tmp_path):
    r = run_berth(berth_bin, "serve", "--data-dir", str(tmp_path / "d"), "--public-url", "ftp://x", check=False)
    assert r.returncode == 1 and "SCHEME://DOMAIN" in r.stderr


# ---------------------------------------------------------------- the command line


def test_help_is_current_and_errors_are_one_line(berth_bin, tmp_path):
    top = run_berth(berth_bin, "--help").stdout
    assert "soon" not in top and "ECR's API" in top
    for args in [
        ["admin", "create-repository", "Not A Name", "--data-dir", str(tmp_path / "d")],
        ["env", "--data-dir", str(tmp_path / "never-served")],
        ["serve", "--data-dir", str(tmp_path / "d2"), "--listen", "nowhere"],
    ]:
        r = run_berth(berth_bin, *args, env={"RUST_BACKTRACE": "full"}, check=False)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("berth: error: "), (args, r.stderr)
        assert "backtrace" not in r.stderr.lower()


def test_env_points_at_the_running_servers_registry(berth_factory, berth_bin):
    b = berth_factory(region="eu-west-1")
    out = run_berth(berth_bin, "env", "--data-dir", str(b.data_dir)).stdout
    assert "export AWS_DEFAULT_REGION=eu-west-1\n" in out
    assert f"export AWS_ENDPOINT_URL_ECR=http://127.0.0.1:{b.port}\n" in out


def test_hosts_lines_for_every_account_and_region(berth, berth_bin, tmp_path):
    berth.admin("create-account", "111122223333")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 ip6-localhost\n")
    printed = berth.admin("hosts").stdout
    for name in ["000000000000.dkr.ecr.ap-northeast-2.localhost", "000000000000.dkr.ecr.eu-west-1.localhost",
                 "111122223333.dkr.ecr.us-east-1.localhost"]:
        assert f"127.0.0.1 {name}\n" in printed
    berth.admin("hosts", "--install", "--hosts-file", str(hosts))
    text = hosts.read_text()
    assert text.startswith("127.0.0.1 localhost\n::1 ip6-localhost\n") and printed in text
    berth.admin("hosts", "--install", "--hosts-file", str(hosts))
    assert hosts.read_text() == text, "installing again changes nothing"


# ---------------------------------------------------------------- acting as a service


def test_a_service_principal_assumes_the_role_its_trust_policy_names(berth, berth_bin):
    key, secret = berth.credentials()
    iam = boto3.client("iam", endpoint_url=berth.url, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    role = iam.create_role(RoleName="ecsTaskExecutionRole", AssumeRolePolicyDocument=json.dumps(ECS_TRUST))["Role"]
    iam.attach_role_policy(RoleName="ecsTaskExecutionRole",
                           PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
    berth.ecr().create_repository(repositoryName="web")
    reg = Registry(berth.url, auth=berth.registry_auth())
    digest = upload_blob(reg, "web", b"a layer")

    out = berth.admin("assume-role", "--as-service", "ecs-tasks.amazonaws.com", "--role-arn", role["Arn"]).stdout
    creds = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.startswith("export "))
    session = dict(aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                   aws_session_token=creds["AWS_SESSION_TOKEN"])
    sts = boto3.client("sts", endpoint_url=berth.url, region_name="us-east-1", **session)
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::000000000000:assumed-role/ecsTaskExecutionRole/ecs-tasks"
    ecr = boto3.client("ecr", endpoint_url=berth.url, region_name="us-east-1", **session)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    assert requests.get(f"{berth.url}/v2/web/blobs/{digest}", auth=(user, password), timeout=10).content == b"a layer"
    # What the role does not allow stays refused: it can pull, not push.
    with pytest.raises(ecr.exceptions.ClientError) as e:
        ecr.create_repository(repositoryName="not-allowed")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"

    # A service the trust policy does not name, and a role that trusts only users.
    iam.create_role(RoleName="users-only", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                       "Action": "sts:AssumeRole"}]}))
    for service, arn in [("lambda.amazonaws.com", role["Arn"]),
                         ("ecs-tasks.amazonaws.com", "arn:aws:iam::000000000000:role/users-only"),
                         ("ecs-tasks.amazonaws.com", "arn:aws:iam::000000000000:role/missing")]:
        r = berth.admin("assume-role", "--as-service", service, "--role-arn", arn, check=False)
        assert r.returncode == 1 and "not authorized to perform: sts:AssumeRole" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- secrets at rest


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stored_bytes(berth) -> bytes:
    """Everything the metadata store holds, as raw bytes: the SQLite files, or a dump."""
    if berth.metadata_url:
        pg_dump = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))[-1]
        return subprocess.run([str(pg_dump), berth.metadata_url], capture_output=True, check=True, timeout=60).stdout
    return b"".join(p.read_bytes() for p in berth.data_dir.glob("meta.db*"))


def test_no_secret_is_stored_in_clear(berth):
    key, secret = berth.credentials()
    iam = boto3.client("iam", endpoint_url=berth.url, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    iam.create_user(UserName="ci")
    user_secret = iam.create_access_key(UserName="ci")["AccessKey"]["SecretAccessKey"]
    berth.ecr().get_authorization_token()
    raw = stored_bytes(berth)
    assert key.encode() in raw, "the dump is of the right database"
    for s in (secret, user_secret):
        assert s.encode() not in raw
    assert b"berth-sealed-v1:" in raw
    if not berth.metadata_url:
        db = sqlite3.connect(f"file:{berth.data_dir / 'meta.db'}?mode=ro", uri=True)
        for (value,) in db.execute("SELECT value FROM server_secrets"):
            assert bytes(value).startswith(b"berth-sealed-v1:")
        db.close()
    assert mode(berth.data_dir) == 0o700
    for name in ["master.key", "credentials", "server.json"] + ([] if berth.metadata_url else ["meta.db"]):
        assert mode(berth.data_dir / name) == 0o600, name


def test_a_wrong_master_key_is_refused_in_one_line(berth, berth_bin, tmp_path):
    other = tmp_path / "other.key"
    other.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    args = ["admin", "login-password", "--data-dir", str(berth.data_dir), "--master-key-file", str(other)]
    if berth.metadata_url:
        args += ["--metadata", berth.metadata_url]
    r = run_berth(berth_bin, *args, check=False)
    assert r.returncode == 1 and "master key" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs, unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("the disk-full test mounts a tmpfs: run it as root (scripts/test does)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_fails_the_upload_clearly_and_gives_the_space_back(berth_factory, small_disk, berth_bin):
    from conftest import Berth

    (small_disk / "data").mkdir()
    b = Berth(berth_bin, small_disk / "data")
    b.start()
    try:
        ecr = b.ecr()
        ecr.create_repository(repositoryName="big")
        reg = Registry(b.url, auth=b.registry_auth())
        data = os.urandom(80 * MiB)
        r = reg.post(f"/v2/big/blobs/uploads/?digest={sha256(data)}", data=data)
        assert r.status_code == 507, r.text
        err = r.json()["errors"][0]
        assert err["code"] == "UNKNOWN" and "full" in err["message"], err
        staged = sum(p.stat().st_size for p in (small_disk / "data").rglob("*") if p.is_file() and "uploads" in p.parts)
        assert staged == 0, "the failed upload's bytes are gone at once"
        # Everything else goes on: a smaller push, and metadata writes.
        small = os.urandom(MiB)
        assert upload_blob(reg, "big", small) == sha256(small)
        ecr.create_repository(repositoryName="after-full")
        # A chunked upload that runs out of space is discarded too.
        r = reg.post("/v2/big/blobs/uploads/")
        location = r.headers["Location"]
        r = reg.patch(location, data=os.urandom(70 * MiB), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 507, r.text
        assert reg.get(location).status_code == 404
        assert upload_blob(reg, "big", b"still fine") == sha256(b"still fine")
    finally:
        b.stop()


# ---------------------------------------------------------------- IAM's XML


def test_iam_answers_stay_well_formed_xml(berth):
    key, secret = berth.credentials()
    iam = boto3.client("iam", endpoint_url=berth.url, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]})
    for bad in ["nul\x00", "bell\x07", "esc\x1b[0m"]:
        with pytest.raises(iam.exceptions.ClientError) as e:
            iam.create_role(RoleName="r", AssumeRolePolicyDocument=trust, Description=bad)
        assert e.value.response["Error"]["Code"] == "ValidationError"
        with pytest.raises(iam.exceptions.ClientError) as e:
            iam.create_policy(PolicyName="p", Description=bad, PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}))
        assert e.value.response["Error"]["Code"] == "ValidationError"
    # Tabs and new lines are text XML carries; the lists stay parseable for everyone.
    iam.create_role(RoleName="ok", AssumeRolePolicyDocument=trust, Description="two\tcolumns\nand lines\r")
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["ok"]
    assert iam.get_role(RoleName="ok")["Role"]["Description"] == "two\tcolumns\nand lines\r"
    iam.list_policies(Scope="Local")
