"""HTTPS with the certificate authority `berth admin tls init` makes.

What this file covers:

* the generated server certificate names the registry and API hosts; the server
  serves HTTPS with it (--tls-cert/--tls-key) and advertises https addresses;
* the aws CLI works with AWS_CA_BUNDLE and fails with a certificate error without it;
* docker logs in, pushes and pulls over HTTPS with the CA in certs.d;
* skopeo refuses the untrusted certificate and accepts it with the CA;
* a client speaking plain HTTP to the HTTPS port gets nowhere, and the server goes on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

MiB = 1024 * 1024


@pytest.fixture
def tls_berth(berth_factory, berth_bin, tmp_path, registry_hosts):
    out = tmp_path / "tls"
    gen = subprocess.run(
        [str(berth_bin), "admin", "tls", "init", "--data-dir", str(tmp_path / "gen"), "--out", str(out)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert gen.returncode == 0, gen.stderr
    assert "AWS_CA_BUNDLE=" in gen.stdout and "certs.d" in gen.stdout, gen.stdout
    b = berth_factory(extra_args=["--tls-cert", str(out / "server.crt"), "--tls-key", str(out / "server.key")])
    b.ca_bundle = str(out / "ca.crt")
    assert b.url.startswith("https://")
    return b, out


def aws(b, *args, ca: str | None) -> subprocess.CompletedProcess:
    key, secret = b.credentials()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1")
    if ca:
        env["AWS_CA_BUNDLE"] = ca
    return subprocess.run(
        ["aws", "--endpoint-url", f"https://localhost:{b.port}", *args],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )


def test_the_aws_cli_needs_the_generated_ca(tls_berth):
    b, out = tls_berth
    made = aws(b, "ecr", "create-repository", "--repository-name", "app", ca=str(out / "ca.crt"))
    assert made.returncode == 0, made.stderr
    token = aws(b, "ecr", "get-authorization-token", ca=str(out / "ca.crt"))
    assert f'"proxyEndpoint": "https://{b.registry_host()}"' in token.stdout, token.stdout
    untrusted = aws(b, "ecr", "describe-repositories", ca=None)
    assert untrusted.returncode != 0
    assert "SSL validation failed" in untrusted.stderr or "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr


def test_docker_pushes_and_pulls_over_https(tls_berth, docker_env, build_test_image):
    from test_clients import docker, docker_push

    b, out = tls_berth
    b.create_repository("secure")
    host = b.registry_host()
    certs = Path("/etc/docker/certs.d") / host
    certs.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy(out / "ca.crt", certs / "ca.crt")
        login = subprocess.run(
            ["docker", "login", "--username", "AWS", "--password-stdin", host],
            input=b.registry_password(), capture_output=True, text=True, env=docker_env, timeout=120,
        )
        assert login.returncode == 0, login.stderr
        ref = f"{host}/secure:v1"
        local = build_test_image()
        docker(docker_env, "tag", local, ref)
        docker_push(docker_env, ref)
        docker(docker_env, "rmi", ref, local)
        docker(docker_env, "pull", ref)
        assert "tini version" in docker(docker_env, "run", "--rm", "--network", "none", ref).stdout
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def test_skopeo_refuses_the_certificate_unless_it_trusts_the_ca(tls_berth, tmp_path):
    from ocihelpers import Registry, push_image

    b, out = tls_berth
    b.create_repository("secure")
    reg = Registry(b.url, auth=b.registry_auth())
    reg.session.verify = str(out / "ca.crt")
    # Else a CA bundle named in the environment would override the session's.
    reg.session.trust_env = False
    pushed = push_image(reg, "secure", "v1")
    ref = f"docker://{b.registry_host()}/secure:v1"
    creds = f"AWS:{b.registry_password()}"
    untrusted = subprocess.run(["skopeo", "inspect", "--creds", creds, ref], capture_output=True, text=True,
                               timeout=120)
    assert untrusted.returncode != 0
    assert "certificate signed by unknown authority" in untrusted.stderr, untrusted.stderr
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(out / "ca.crt", trust / "ca.crt")
    trusted = subprocess.run(["skopeo", "inspect", "--cert-dir", str(trust), "--creds", creds, ref],
                             capture_output=True, text=True, timeout=120)
    assert trusted.returncode == 0, trusted.stderr
    assert pushed.digest in trusted.stdout


def test_plain_http_on_the_https_port_gets_nowhere(tls_berth):
    b, out = tls_berth
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{b.port}/v2/", timeout=10)
    r = requests.get(f"{b.url}/v2/", verify=str(out / "ca.crt"), timeout=10)
    assert r.status_code == 401
