"""Connections and the protocol's edges, as outside clients meet them.

* An early answer (a 401 before the body was read) leaves the connection usable for
  the client's authenticated retry (the body is drained when small), or says
  ``Connection: close`` (when large): Go's client does not replay a PUT/PATCH on a
  connection that died under it.
* Timeouts: a connection that never sends a byte, an idle keep-alive connection and a
  stalled body are closed; the header limit (431) holds on every request of a
  connection.
* The access log's byte counts are what was sent.
* Requests that reach the API's path get the AWS protocols' errors; ECR bodies are
  read only after the headers' signature checks, under a per-operation cap.
* Presigned SigV4 with any bytes in ``X-Amz-Date`` gets an answer, not a dropped
  connection.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ocihelpers import MiB, sha256, unique_name

TARGET = "AmazonEC2ContainerRegistry_V20150921."


def connect(berth) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", berth.port, timeout=30)


def local_port(conn: http.client.HTTPConnection) -> int:
    return conn.sock.getsockname()[1]


def signed_headers(berth, operation: str, body: bytes, service="ecr", content_type="application/x-amz-json-1.1"):
    key, secret = berth.credentials()
    req = AWSRequest(method="POST", url=f"{berth.url}/", data=body, headers={
        "Content-Type": content_type,
        "X-Amz-Target": TARGET + operation,
    })
    SigV4Auth(Credentials(key, secret), service, berth.region).add_auth(req)
    return dict(req.headers.items())


def read_access_log(berth, request_id: str) -> dict:
    for line in berth.log_text().splitlines():
        if f'"request_id":"{request_id}"' in line and '"target":"access"' in line:
            return json.loads(line)
    raise AssertionError(f"no access line for {request_id}")


# ---------------------------------------------------------------- early answers


def test_a_401_before_the_body_keeps_the_connection_for_the_retry(berth):
    """The Go pattern, 200 times: PUT/PATCH with a body and no credentials, 401, the
    authenticated retry on the same connection."""
    repo = unique_name("early")
    berth.ecr().create_repository(repositoryName=repo)
    auth = berth.basic_auth_header()
    conn = connect(berth)
    conn.request("GET", "/v2/")
    assert conn.getresponse().read() is not None
    port = local_port(conn)
    for i in range(200):
        body = bytes([i % 256]) * (1000 + i)
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=body)
        r = conn.getresponse()
        r.read()
        assert r.status == 401, r.status
        assert r.getheader("Connection") is None
        conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(body)}", body=body,
                     headers={"Authorization": auth})
        r = conn.getresponse()
        r.read()
        assert r.status == 201, (i, r.status)
        assert local_port(conn) == port, "the same connection served every request"


def test_raw_socket_sends_the_whole_body_then_retries_on_the_same_connection(berth):
    repo = unique_name("raw")
    berth.ecr().create_repository(repositoryName=repo)
    auth = berth.basic_auth_header()
    with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(100):
            body = b"x" * (256 * 1024)  # more than hyper buffers: only a drain keeps it
            s.sendall(f"PATCH /v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 401"), (i, status)
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
            s.sendall(f"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n".encode())
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 200"), (i, status)
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)


def test_a_large_unread_body_closes_the_connection_and_says_so(berth):
    conn = connect(berth)
    conn.putrequest("PUT", "/v2/anything/blobs/uploads/x")
    conn.putheader("Content-Length", str(3 * MiB))
    conn.endheaders(b"y" * (64 * 1024))  # the rest is never sent: the answer comes first
    r = conn.getresponse()
    r.read()
    assert r.status == 401 and r.getheader("Connection") == "close"
    # http.client honours it and opens a new connection for the next request.
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok\n"


# ---------------------------------------------------------------- limits and timeouts


def test_the_header_limit_holds_on_a_reused_connection(berth):
    conn = connect(berth)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok\n"
    conn.request("GET", "/healthz", headers={"X-Big": "a" * (70 * 1024)})
    r = conn.getresponse()
    r.read()
    assert r.status == 431


@pytest.fixture
def quick(berth_factory):
    return berth_factory(extra_args=["--header-timeout", "1", "--idle-timeout", "1", "--body-timeout", "1"])


def closed_within(s: socket.socket, seconds: float) -> bytes:
    """Read until the server closes; what it sent. Fails if it stays open `seconds`."""
    s.settimeout(seconds)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass  # closed with our unread bytes in its buffer: a reset, still a close
    except socket.timeout:
        pytest.fail(f"the server kept the connection open over {seconds} s; got {got[:200]!r}")
    return got


def test_a_connection_that_never_sends_a_byte_is_closed(quick):
    with socket.create_connection(("127.0.0.1", quick.port)) as s:
        start = time.monotonic()
        assert closed_within(s, 15) == b""
        assert time.monotonic() - start >= 0.9


def test_an_idle_keep_alive_connection_is_closed(quick):
    with socket.create_connection(("127.0.0.1", quick.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = closed_within(s, 15)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok\n")


def test_the_idle_timeout_is_not_cut_short_by_the_header_timeout(berth_factory):
    b = berth_factory(extra_args=["--header-timeout", "1", "--idle-timeout", "4"])
    with socket.create_connection(("127.0.0.1", b.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        got = closed_within(s, 20)
        assert got.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - start >= 3.5, "kept for the idle timeout, not the header timeout"
    # A head that never completes gets the header timeout, however slowly it arrives.
    with socket.create_connection(("127.0.0.1", b.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        closed_within(s, 20)
        assert time.monotonic() - start < 3.5


def test_a_stalled_body_is_abandoned(quick):
    repo = unique_name("stall")
    quick.ecr().create_repository(repositoryName=repo)
    auth = quick.basic_auth_header()
    with socket.create_connection(("127.0.0.1", quick.port)) as s:
        s.sendall(f"POST /v2/{repo}/blobs/uploads/?digest={sha256(b'x' * 1000)} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: {auth}\r\nContent-Length: 1000\r\n\r\nabcd".encode())
        got = closed_within(s, 15)
        assert got == b"" or got.startswith(b"HTTP/1.1 4"), got[:200]
    # The ECR API's body read too.
    body = json.dumps({"repositoryName": "stalled"}).encode()
    headers = signed_headers(quick, "CreateRepository", body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", quick.port)) as s:
        s.sendall(f"POST / HTTP/1.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body[:4])
        got = closed_within(s, 15)
        assert got == b"" or got.startswith(b"HTTP/1.1 4"), got[:200]
    assert "stalled" not in [r["repositoryName"] for r in quick.ecr().describe_repositories()["repositories"]]


def test_the_access_log_counts_what_was_sent(berth):
    repo = unique_name("log")
    ecr = berth.ecr()
    ecr.create_repository(repositoryName=repo)
    conn = connect(berth)
    auth = berth.basic_auth_header()
    conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Authorization": auth})
    r = conn.getresponse()
    r.read()
    location = r.getheader("Location")
    data = b"z" * (5 * MiB + 3)
    conn.request("PATCH", location, body=data, headers={"Authorization": auth})
    r = conn.getresponse()
    r.read()
    assert r.status == 202
    patch = read_access_log(berth, r.getheader("x-amzn-RequestId"))
    assert patch["request_bytes"] == len(data)
    body = json.dumps({"repositoryNames": [repo]}).encode()
    conn.request("POST", "/", body=body, headers=signed_headers(berth, "DescribeRepositories", body))
    r = conn.getresponse()
    answer = r.read()
    assert r.status == 200
    line = read_access_log(berth, r.getheader("x-amzn-RequestId"))
    assert (line["request_bytes"], line["response_bytes"]) == (len(body), len(answer))
    assert line["response_bytes"] > 0


# ---------------------------------------------------------------- the API's path


def aws_error(r: http.client.HTTPResponse) -> tuple[int, str]:
    text = r.read()
    return r.status, json.loads(text)["__type"]


@pytest.mark.parametrize("target", [None, "", "AmazonEC2ContainerRegistry_V20150921.NoSuchThing",
                                    "amazonec2containerregistry_v20150921.CreateRepository", "Other.CreateRepository"])
def test_an_unknown_or_missing_target_is_unknown_operation(berth, target):
    conn = connect(berth)
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = target
    conn.request("POST", "/", body=b"{}", headers=headers)
    r = conn.getresponse()
    assert r.getheader("Content-Type") == "application/x-amz-json-1.1"
    assert aws_error(r) == (400, "UnknownOperationException")


def test_other_requests_to_the_api_path_get_the_aws_protocol(berth):
    conn = connect(berth)
    conn.request("GET", "/")
    assert aws_error(conn.getresponse()) == (400, "UnknownOperationException")
    # Media types are case-insensitive: a signed request with another spelling works.
    body = json.dumps({"repositoryName": "cased"}).encode()
    headers = signed_headers(berth, "CreateRepository", body, content_type="Application/X-Amz-Json-1.1")
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    assert r.status == 200, r.read()
    assert json.loads(r.read())["repository"]["repositoryName"] == "cased"
    # An IAM Query request with an unknown action is InvalidAction, in XML.
    key, secret = berth.credentials()
    req = AWSRequest(method="POST", url=f"{berth.url}/", data="Action=Nope&Version=2010-05-08",
                     headers={"Content-Type": "application/X-WWW-Form-Urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key, secret), "iam", "us-east-1").add_auth(req)
    conn.request("POST", "/", body=req.body, headers=dict(req.headers.items()))
    r = conn.getresponse()
    text = r.read().decode()
    assert r.status == 400 and "<Code>InvalidAction</Code>" in text, text


def test_ecr_bodies_are_read_after_the_headers_are_checked(berth):
    conn = connect(berth)
    # No credentials: refused before a byte of the (declared) 27 MiB body is sent.
    conn.putrequest("POST", "/", skip_accept_encoding=True)
    conn.putheader("Content-Type", "application/x-amz-json-1.1")
    conn.putheader("X-Amz-Target", TARGET + "UploadLayerPart")
    conn.putheader("Content-Length", str(27 * MiB))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status in (400, 403) and r.getheader("Connection") == "close"
    assert json.loads(r.read())["__type"] == "MissingAuthenticationTokenException"
    # Signed, but larger than the operation accepts: refused by its declared length.
    body = json.dumps({"repositoryName": "big", "x": "a" * (9 * MiB)}).encode()
    conn = connect(berth)
    conn.putrequest("POST", "/", skip_accept_encoding=True)
    for k, v in signed_headers(berth, "CreateRepository", body).items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body[:65536])
    r = conn.getresponse()
    assert aws_error(r) == (413, "SerializationException")


def test_unauthenticated_large_bodies_do_not_grow_the_server(berth):
    def rss_kib() -> int:
        for line in open(f"/proc/{berth.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    before = rss_kib()
    body = b"{" + b" " * (27 * MiB - 2) + b"}"
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as s:
            s.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                      f"X-Amz-Target: {TARGET}UploadLayerPart\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed without reading it: the point
            got = closed_within(s, 30)
            assert b"MissingAuthenticationTokenException" in got or got == b""
    assert rss_kib() - before < 40 * 1024, (before, rss_kib())


def test_a_presigned_request_with_any_bytes_in_its_date_is_answered(berth):
    # Found by fuzzing: a multi-byte character across X-Amz-Date's 9th byte panicked.
    for date in ["2025010%C3%A9T0304Z5", "20250102%C3%A903040Z", "%FF%FE", "2025010%E2%82%AC304Z"]:
        query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX%2F20250102%2Fus-east-1%2Fecr%2Faws4_request"
                 f"&X-Amz-Date={date}&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00&x=%e9%")
        conn = connect(berth)
        conn.request("POST", f"/?{query}", body=b"{}",
                     headers={"X-Amz-Target": TARGET + "DescribeRepositories",
                              "Content-Type": "application/x-amz-json-1.1"})
        r = conn.getresponse()
        assert r.status in (400, 403), (date, r.status)
        assert json.loads(r.read())["__type"] in (
            "IncompleteSignatureException", "InvalidSignatureException", "MissingAuthenticationTokenException")
    assert berth.running()
