"""Upstream registries for the pull-through cache's tests, all on loopback.

- ``Distribution``: CNCF Distribution (Debian's ``docker-registry``), anonymous or
  behind htpasswd (Basic auth), with its access log on so tests can count the GETs
  Berth sent it.
- ``TokenRegistry``: the Bearer-token flow Docker Hub, GHCR and Quay use, written for
  the test: a token endpoint that takes Basic credentials, and a front that answers
  ``401 WWW-Authenticate: Bearer realm=...,service=...,scope=...`` until it gets a token
  it issued, then forwards to an anonymous Distribution.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest
import requests

from ocihelpers import Registry

ACCESS_LINE = re.compile(r'"(GET|HEAD) (\S+) HTTP/[0-9.]+" (\d+) \S+ "[^"]*" "([^"]*)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    """One docker-registry process on a free loopback port."""

    def __init__(self, workdir: Path, htpasswd: Optional[tuple[str, str]] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.htpasswd = htpasswd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "registry.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Distribution":
        if shutil.which("docker-registry") is None:
            pytest.fail("docker-registry is not installed; run the README test command (scripts/test)")
        auth = ""
        if self.htpasswd:
            user, password = self.htpasswd
            path = self.workdir / "htpasswd"
            out = subprocess.run(
                ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
            ).stdout
            path.write_text(out)
            auth = f"auth: {{htpasswd: {{realm: test-realm, path: {path}}}}}\n"
        (self.workdir / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: false}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}}}\n" + auth
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.workdir / "config.yml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        pytest.fail(f"docker-registry did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Registry:
        return Registry(self.url, auth=self.htpasswd)

    def gets(self, agent: str = "berth/") -> collections.Counter:
        """GET requests per path whose User-Agent contains ``agent`` (Berth's own)."""
        counts: collections.Counter = collections.Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            m = ACCESS_LINE.search(line)
            if m and m.group(1) == "GET" and agent in m.group(4):
                counts[m.group(2)] += 1
        return counts


class _TokenHandler(BaseHTTPRequestHandler):
    server: "_TokenServer"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        srv = self.server
        if self.path.startswith("/token"):
            auth = self.headers.get("Authorization", "")
            ok = auth == "Basic " + base64.b64encode(f"{srv.user}:{srv.password}".encode()).decode()
            if not ok:
                return self._send(401, b'{"details":"incorrect username or password"}')
            token = secrets.token_hex(16)
            srv.tokens.add(token)
            srv.token_requests.append(self.path)
            return self._send(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                              {"Content-Type": "application/json"})
        auth = self.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and auth[7:] in srv.tokens):
            m = re.match(r"/v2/(.+)/(manifests|blobs)/", self.path)
            scope = f',scope="repository:{m.group(1)}:pull"' if m else ""
            challenge = f'Bearer realm="http://127.0.0.1:{srv.server_port}/token",service="token-test"{scope}'
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "user-agent", "range")}
        r = requests.request(self.command, srv.backend + self.path, headers=headers, timeout=60,
                             allow_redirects=False)
        passed = {k: v for k, v in r.headers.items()
                  if k.lower() in ("content-type", "docker-content-digest", "etag")}
        self._send(r.status_code, r.content, passed)


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: str, user: str, password: str):
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.backend = backend
        self.user = user
        self.password = password
        self.tokens: set[str] = set()
        self.token_requests: list[str] = []


class TokenRegistry:
    """A Bearer-token front for an anonymous Distribution."""

    def __init__(self, backend: Distribution, user: str, password: str):
        self.backend = backend
        self.server = _TokenServer(backend.url, user, password)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "TokenRegistry":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def token_requests(self) -> list[str]:
        return self.server.token_requests
