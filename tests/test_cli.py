"""The command-line contract: `berth --help`, settings from flags, environment variables
and a config file, readiness, graceful shutdown and the access log.

These start the binary directly (not through the `berth` fixture) because they vary how
it is configured. SQLite only: configuration does not depend on the metadata backend.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

READY_TIMEOUT = 30


class Server:
    """A berth process started with an arbitrary argv and environment."""

    def __init__(self, binary: Path, args: list[str], env: dict[str, str], cwd: Path):
        self.stderr_path = cwd / "stderr.log"
        self.proc = subprocess.Popen(
            [str(binary), *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(self.stderr_path, "wb"),
            start_new_session=True,
        )
        line = self._first_line()
        assert line.startswith("berth listening on http://"), (line, self.stderr())
        self.url = line.removeprefix("berth listening on ")
        self.host, port = self.url.removeprefix("http://").split(":")
        self.port = int(port)

    def _first_line(self) -> str:
        # The process prints the line once it is bound, or exits (closing stdout).
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        assert ready, f"berth printed nothing within {READY_TIMEOUT}s: {self.stderr()}"
        return self.proc.stdout.readline().decode().strip()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def auth(self, data_dir: Path, region: str = "us-east-1") -> tuple[str, str]:
        """("AWS", password) for this server's registry, via GetAuthorizationToken with the
        credentials the first start wrote to DATA_DIR/credentials."""
        import base64

        import boto3

        fields = dict(
            (k.strip(), v.strip())
            for k, v in (l.split("=", 1) for l in (data_dir / "credentials").read_text().splitlines() if "=" in l)
        )
        ecr = boto3.client(
            "ecr", endpoint_url=self.url, region_name=region,
            aws_access_key_id=fields["aws_access_key_id"], aws_secret_access_key=fields["aws_secret_access_key"],
        )
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        return ("AWS", base64.b64decode(token).decode().split(":", 1)[1])

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def start_server(berth_bin, tmp_path):
    started: list[Server] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Server:
        s = Server(berth_bin, args, env or {}, tmp_path)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def test_help_explains_every_option(berth_bin):
    out = subprocess.run([str(berth_bin), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for option, env in [
        ("--listen", "BERTH_LISTEN"),
        ("--data-dir", "BERTH_DATA_DIR"),
        ("--metadata", "BERTH_METADATA"),
        ("--account-id", "BERTH_ACCOUNT_ID"),
        ("--region", "BERTH_REGION"),
        ("--domain", "BERTH_DOMAIN"),
        ("--create-on-push", "BERTH_CREATE_ON_PUSH"),
        ("--config", "BERTH_CONFIG"),
    ]:
        assert option in out and env in out, f"{option} / {env} missing from help:\n{out}"
    top = subprocess.run([str(berth_bin), "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in top and "admin" in top


def test_invalid_settings_are_refused(berth_bin, tmp_path):
    for args, word in [
        (["--account-id", "123"], "12 digits"),
        (["--region", "US_EAST"], "region"),
        (["--listen", "nowhere"], "ADDR:PORT"),
    ]:
        r = subprocess.run(
            [str(berth_bin), "serve", "--data-dir", str(tmp_path / "d"), *args],
            capture_output=True, text=True, timeout=30,
        )
        assert r.returncode != 0 and word in r.stderr, (args, r.stderr)


def test_settings_from_environment(start_server, tmp_path):
    data = tmp_path / "env-data"
    s = start_server(
        ["serve"],
        {
            "BERTH_LISTEN": "127.0.0.1:0",
            "BERTH_DATA_DIR": str(data),
            "BERTH_ACCOUNT_ID": "444455556666",
            "BERTH_REGION": "ap-south-1",
        },
    )
    r = requests.get(f"{s.url}/v2/nope/tags/list", timeout=10, auth=s.auth(data, "ap-south-1"))
    assert r.status_code == 404
    assert "registry with id '444455556666'" in r.json()["errors"][0]["message"]
    assert (data / "meta.db").is_file(), "SQLite lives in the data dir from BERTH_DATA_DIR"
    assert s.terminate() == 0


def test_settings_from_config_file_and_flags_win(start_server, tmp_path):
    data = tmp_path / "file-data"
    cfg = tmp_path / "berth.toml"
    cfg.write_text(
        f'listen = "127.0.0.1:0"\ndata_dir = "{data}"\naccount_id = "777788889999"\ncreate_on_push = true\n'
    )
    s = start_server(["serve", "--config", str(cfg), "--region", "eu-central-1"])
    auth = s.auth(data, "eu-central-1")
    # create_on_push from the file: a push to a new repository succeeds.
    r = requests.post(f"{s.url}/v2/from-file/blobs/uploads/", timeout=10, auth=auth)
    assert r.status_code == 202, r.text
    r = requests.get(f"{s.url}/v2/_catalog", timeout=10, auth=auth)
    assert r.json()["repositories"] == ["from-file"]
    assert s.terminate() == 0
    # The repository belongs to the file's account and the flag's region.
    out = subprocess.run(
        [str(s.proc.args[0]), "admin", "list-repositories", "--data-dir", str(data),
         "--account-id", "777788889999", "--region", "eu-central-1"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.split() == ["from-file"]


def test_unknown_config_keys_are_refused(berth_bin, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('listen = "127.0.0.1:0"\nlissten = "typo"\n')
    r = subprocess.run([str(berth_bin), "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "lissten" in r.stderr


def test_graceful_shutdown_finishes_an_upload_in_flight(start_server, tmp_path):
    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "g"), "--create-on-push"])
    auth = s.auth(tmp_path / "g")
    r = requests.post(f"{s.url}/v2/app/blobs/uploads/", timeout=10, auth=auth)
    location = r.headers["Location"]
    body = os.urandom(256 * 1024)
    conn = socket.create_connection((s.host, s.port), timeout=30)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n"
        f"Authorization: Basic {base64.b64encode(':'.join(auth).encode()).decode()}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode() + body[:1000])
    # Connections are accepted in order: once a request on a second connection has been
    # answered, the PATCH's connection is in the server's hands when the signal lands.
    assert requests.get(f"{s.url}/v2/", timeout=10, auth=auth).status_code == 200
    s.proc.send_signal(signal.SIGTERM)
    conn.sendall(body[1000:])
    reply = conn.recv(4096).decode()
    conn.close()
    assert reply.startswith("HTTP/1.1 202"), reply
    assert f"range: 0-{len(body) - 1}" in reply.lower()
    assert s.proc.wait(timeout=30) == 0
    # New connections are refused once it has stopped.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{s.url}/v2/", timeout=5)


def test_access_log_has_one_json_line_per_request(start_server, tmp_path):
    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "l")])
    auth = s.auth(tmp_path / "l")
    requests.get(f"{s.url}/v2/", timeout=10)
    requests.get(f"{s.url}/v2/missing/tags/list?secret=hidden", timeout=10, auth=auth)
    assert s.terminate() == 0
    lines = [json.loads(l) for l in s.stderr().splitlines() if l.startswith("{")]
    access = [l for l in lines if l.get("target") == "access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("POST", "/", 200),  # GetAuthorizationToken
        ("GET", "/v2/", 401),
        ("GET", "/v2/missing/tags/list", 404),
    ]
    # Credentials never reach the log.
    secret = (tmp_path / "l" / "credentials").read_text().split("aws_secret_access_key = ")[1].strip()
    assert auth[1] not in s.stderr() and secret not in s.stderr()
    for a in access:
        assert {"request_id", "duration_ms", "request_bytes", "response_bytes"} <= a.keys()
    assert "hidden" not in s.stderr(), "query strings are not logged"


def test_healthz_and_readiness_line(start_server, tmp_path):
    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "h")])
    assert requests.get(f"{s.url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{s.url}/v2/", timeout=10, auth=s.auth(tmp_path / "h")).status_code == 200


def test_first_start_names_the_root_key_and_writes_it_0600(start_server, berth_bin, tmp_path):
    data = tmp_path / "boot"
    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    assert s.terminate() == 0
    first = s.proc.stdout.read().decode()
    creds = data / "credentials"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    text = creds.read_text()
    key = text.split("aws_access_key_id = ")[1].split()[0]
    secret = text.split("aws_secret_access_key = ")[1].split()[0]
    assert key.startswith("AKIA") and len(secret) == 40
    # The key id and where the pair is, never the secret (stdout ends up in logs).
    assert key in first and str(creds) in first and secret not in first
    # What to do next, with this binary and this data directory.
    assert f"env --data-dir {data}" in first and "admin hosts" in first
    assert f"docker login --username AWS --password-stdin localhost:{s.port}" in first
    assert "[default]" in text
    again = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    assert again.terminate() == 0
    assert secret not in again.proc.stdout.read().decode(), "not shown again"
    assert creds.read_text() == text, "the same key is kept"
    assert secret not in again.stderr()


def test_berth_env_gives_a_shell_that_the_aws_cli_can_use(start_server, berth_bin, tmp_path):
    data = tmp_path / "env"
    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    listen = f"{s.host}:{s.port}"
    script = (
        f'eval "$({berth_bin} env --data-dir {data})" && '
        "aws ecr create-repository --repository-name from-env >/dev/null && "
        "aws ecr describe-repositories --query 'repositories[].repositoryName' --output text"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["from-env"]
    # Only Berth's services are pointed at it: `aws s3`, `aws ecs` keep their endpoints.
    exports = subprocess.run([str(berth_bin), "env", "--data-dir", str(data)],
                             capture_output=True, text=True, check=True).stdout
    assert "AWS_ENDPOINT_URL=" not in exports
    for service in ("ECR", "IAM", "STS"):
        assert f"export AWS_ENDPOINT_URL_{service}=http://{listen}\n" in exports


def test_dev_mode_accepts_any_key_pair(start_server, tmp_path):
    import boto3

    s = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "dev"), "--dev"])
    ecr = boto3.client("ecr", endpoint_url=s.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    assert ecr.create_repository(repositoryName="dev-repo")["repository"]["registryId"] == "000000000000"
    # Without --dev the same keys are refused.
    strict = start_server(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "strict")])
    ecr = boto3.client("ecr", endpoint_url=strict.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(Exception) as e:
        ecr.describe_repositories()
    assert "UnrecognizedClientException" in str(e.value)
