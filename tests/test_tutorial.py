"""The ECR tutorial, verbatim, with the real aws CLI (v1) and docker — and each classic
mistake failing with ECR's words."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 300


def sh(cmd: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell line as a user would type it."""
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def expect_fail(cmd: str, env: dict, *texts: str) -> str:
    proc = sh(cmd, env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"unexpected success: {cmd}\n{out}"
    for t in texts:
        assert t in out, f"expected {t!r} in output of {cmd}:\n{out}"
    return out


@pytest.fixture
def tutorial_env(berth, docker_env, tmp_path):
    """The shell environment of the tutorial: the three exports, plus the private dockerd."""
    env = {k: v for k, v in docker_env.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_ECR=berth.url,
        AWS_ENDPOINT_URL_IAM=berth.url,
        AWS_ENDPOINT_URL_STS=berth.url,
        AWS_SHARED_CREDENTIALS_FILE=str(berth.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        DOCKER_CONFIG=str(tmp_path / "docker-config"),
    )
    return env


@pytest.fixture
def app_context(tmp_path) -> Path:
    """A `docker build` context: FROM scratch, a few layers, an init that runs."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "blob1.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (ctx / "hello.txt").write_text("hello from berth\n")
    (ctx / "init").write_bytes(Path("/usr/bin/docker-init").read_bytes())
    (ctx / "init").chmod(0o755)
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY blob1.bin /data/blob1.bin\nCOPY hello.txt /data/hello.txt\nCOPY init /init\n"
        'CMD ["/init","--version"]\n'
    )
    return ctx


def test_tutorial_flow_and_classic_mistakes(berth, tutorial_env, app_context, tmp_path):
    env = tutorial_env
    acct = berth.account_id
    registry = f"{acct}.dkr.ecr.us-east-1.localhost:{berth.port}"
    wrong_region = f"{acct}.dkr.ecr.eu-west-1.localhost:{berth.port}"

    out = json.loads(sh("aws ecr create-repository --repository-name my-app", env).stdout)
    assert out["repository"]["repositoryUri"] == f"{registry}/my-app"

    # Classic mistake: push before logging in.
    sh(f"cd {shlex.quote(str(app_context))} && docker build -t my-app . && docker tag my-app:latest {registry}/my-app:latest", env)
    expect_fail(f"docker push {registry}/my-app:latest", env, "no basic auth credentials")

    login = sh(f"aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin {registry}", env)
    assert "Login Succeeded" in login.stdout

    push = sh(f"docker push {registry}/my-app:latest", env)
    pushed = push.stdout.split("digest: ")[1].split()[0]
    sh(f"docker rmi {registry}/my-app:latest my-app:latest", env)
    sh(f"docker pull {registry}/my-app:latest", env)
    assert "tini version" in sh(f"docker run --rm --network none {registry}/my-app:latest", env).stdout

    images = json.loads(sh("aws ecr describe-images --repository-name my-app", env).stdout)["imageDetails"]
    assert [(i["imageDigest"], i["imageTags"]) for i in images] == [(pushed, ["latest"])]
    assert images[0]["imageSizeInBytes"] > 3 * 1024 * 1024
    assert images[0]["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"

    # Classic mistake: a repository that was never created.
    sh(f"docker tag {registry}/my-app:latest {registry}/never-created:latest", env)
    expect_fail(
        f"docker push {registry}/never-created:latest", env,
        f"name unknown: The repository with name 'never-created' does not exist in the registry with id '{acct}'",
    )

    # Classic mistake: tagged with another region's host.
    sh(f"docker tag {registry}/my-app:latest {wrong_region}/my-app:latest", env)
    expect_fail(f"docker push {wrong_region}/my-app:latest", env, "no basic auth credentials")
    expect_fail(
        f"aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin {wrong_region}",
        env, "401 Unauthorized",
    )

    # Classic mistake: an expired token. docker keeps the token it logged in with; we put
    # one there that expired, as a login 12 hours ago would have left it.
    expired = berth.admin("login-password", "--account-id", acct, "--region", "us-east-1", "--expires-in", "0").stdout.strip()
    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    auths = json.loads(config.read_text())
    auths["auths"][registry] = {"auth": base64.b64encode(f"AWS:{expired}".encode()).decode()}
    config.write_text(json.dumps(auths))
    expect_fail(
        f"docker pull {registry}/my-app:latest", env,
        "Your authorization token has expired. Reauthenticate and try again.",
    )

    # The legacy CLI command prints a docker login that works.
    line = sh("aws ecr get-login --no-include-email --region us-east-1", env).stdout.strip()
    assert line.startswith("docker login -u AWS -p ") and line.endswith(f"http://{registry}"), line
    assert "Login Succeeded" in sh(line, env).stdout
    sh(f"docker pull {registry}/my-app:latest", env)


def test_repeated_push_works_on_an_immutable_repository(berth, tutorial_env, app_context):
    env = tutorial_env
    registry = f"{berth.account_id}.dkr.ecr.us-east-1.localhost:{berth.port}"
    sh("aws ecr create-repository --repository-name frozen --image-tag-mutability IMMUTABLE", env)
    sh(f"aws ecr get-login-password | docker login --username AWS --password-stdin {registry}", env)
    sh(f"cd {shlex.quote(str(app_context))} && docker build -t frozen . && docker tag frozen {registry}/frozen:v1", env)
    sh(f"docker push {registry}/frozen:v1", env)
    sh(f"docker push {registry}/frozen:v1", env)  # same image again: fine
    (app_context / "hello.txt").write_text("changed\n")
    sh(f"cd {shlex.quote(str(app_context))} && docker build -t frozen . && docker tag frozen {registry}/frozen:v1", env)
    expect_fail(
        f"docker push {registry}/frozen:v1", env,
        "tag invalid: The image tag 'v1' already exists in the 'frozen' repository and cannot be overwritten because the repository is immutable.",
    )


def test_quick_start_pushes_to_localhost_with_no_hosts_lines(berth, tutorial_env, app_context):
    """The README's quick start: `localhost:PORT` needs no DNS and no /etc/hosts line, and
    addresses the default account and region; the same image is then visible by its
    ECR-shaped name."""
    env = tutorial_env
    plain = f"localhost:{berth.port}"
    sh("aws ecr create-repository --repository-name quick", env)
    login = sh(f"aws ecr get-login-password | docker login --username AWS --password-stdin {plain}", env)
    assert "Login Succeeded" in login.stdout
    sh(f"cd {shlex.quote(str(app_context))} && docker build -t quick . && docker tag quick {plain}/quick:v1", env)
    pushed = sh(f"docker push {plain}/quick:v1", env).stdout.split("digest: ")[1].split()[0]
    images = json.loads(sh("aws ecr describe-images --repository-name quick", env).stdout)["imageDetails"]
    assert [(i["imageDigest"], i["imageTags"]) for i in images] == [(pushed, ["v1"])]
    sh(f"docker rmi {plain}/quick:v1 quick:latest", env)
    sh(f"docker pull {plain}/quick:v1", env)
