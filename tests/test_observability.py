"""What operators see: Prometheus metrics (parsed with Prometheus' own client library),
the CloudTrail-shaped audit trail (`berth admin events`, the JSON-lines file), and
EventBridge-shaped event notifications posted to webhooks (a receiver in this test,
down for a while, then up; HMAC signatures checked here).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from ocihelpers import Registry, push_image, upload_blob
from test_jobs import wait_until
from test_replication import configure, dest, registry


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def scrape(url: str, auth=None) -> dict:
    """{(name, frozenset(labels)): value} of one scrape."""
    r = requests.get(url + "/metrics", auth=auth, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def layers_of(m) -> list[dict]:
    return json.loads(m.body)["layers"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iam(berth, creds=None):
    key, secret = creds or berth.credentials()
    return boto3.client("iam", endpoint_url=berth.url, region_name=berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def user_with_policy(berth, name: str, actions: list[str]) -> tuple[str, str]:
    c = iam(berth)
    c.create_user(UserName=name)
    if actions:
        c.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }))
    k = c.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def audit(berth, *filters: str) -> list[dict]:
    out = berth.admin("events", "--limit", "10000", *filters).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------

def test_metrics_need_a_key_allowed_to_read_them(berth):
    assert requests.get(berth.url + "/metrics", timeout=10).status_code == 401
    key, _ = berth.credentials()
    assert requests.get(berth.url + "/metrics", auth=(key, "wrong"), timeout=10).status_code == 401
    scrape(berth.url, auth=berth.credentials())
    denied = user_with_policy(berth, "no-metrics", ["ecr:DescribeRepositories"])
    r = requests.get(berth.url + "/metrics", auth=denied, timeout=10)
    assert r.status_code == 403 and "berth:GetMetrics" in r.text
    allowed = user_with_policy(berth, "prometheus", ["berth:GetMetrics"])
    scrape(berth.url, auth=allowed)


def test_counters_move_as_clients_push_and_pull(berth):
    auth = berth.credentials()
    before = scrape(berth.url, auth=auth)
    berth.ecr().create_repository(repositoryName="metered")
    reg = registry(berth)
    m = push_image(reg, "metered", "v1")
    r = reg.get(f"/v2/metered/manifests/v1", headers={"Accept": m.media_type})
    assert r.status_code == 200
    for _ in range(3):
        assert reg.get(f"/v2/metered/blobs/{layers_of(m)[0]['digest']}").status_code == 200
    after = scrape(berth.url, auth=auth)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("berth_requests_total", frontend="registry", operation="manifest_put", status="201") == 1
    assert moved("berth_requests_total", frontend="registry", operation="manifest_get", status="200") == 1
    assert moved("berth_requests_total", frontend="registry", operation="blob_get", status="200") == 3
    assert moved("berth_requests_total", frontend="ecr", operation="CreateRepository", status="200") == 1
    assert moved("berth_request_duration_seconds_count", frontend="registry", operation="blob_get") == 3
    layer_size = layers_of(m)[0]["size"]
    assert moved("berth_response_bytes_total", frontend="registry") >= 3 * layer_size
    assert moved("berth_request_bytes_total", frontend="registry") >= layer_size
    # Storage per account is read from the store (at most every few seconds).
    wait_until("the storage gauge", lambda: value(
        scrape(berth.url, auth=auth), "berth_storage_bytes", account_id=berth.account_id) >= layer_size)
    assert value(scrape(berth.url, auth=auth), "berth_repositories") >= 1
    # The blob reads after the first find the repository in the node's cache.
    assert moved("berth_cache_lookups_total", cache="repository", result="hit") >= 3


def test_metrics_can_move_to_a_private_listener(berth_factory, tmp_path):
    port = free_port()
    cfg = tmp_path / "berth.toml"
    cfg.write_text(f'[metrics]\npublic = false\nlisten = "127.0.0.1:{port}"\n')
    berth = berth_factory(extra_args=["--config", str(cfg)])
    assert requests.get(berth.url + "/metrics", auth=berth.credentials(), timeout=10).status_code == 404
    samples = scrape(f"http://127.0.0.1:{port}")
    assert any(name == "berth_requests_total" for name, _ in samples) or samples


# ---------------------------------------------------------------------------
# audit trail
# ---------------------------------------------------------------------------

def test_a_sequence_of_calls_yields_exactly_its_records(berth_factory, tmp_path):
    trail = tmp_path / "audit.jsonl"
    cfg = tmp_path / "berth.toml"
    cfg.write_text(f'[audit]\nfile = "{trail}"\n')
    berth = berth_factory(extra_args=["--config", str(cfg)])
    root_key, root_secret = berth.credentials()
    ecr = berth.ecr()
    created = ecr.create_repository(repositoryName="audited")
    ecr.describe_repositories()  # read-only: not recorded by default
    with pytest.raises(ClientError):
        ecr.create_repository(repositoryName="audited")
    user_key, user_secret = user_with_policy(berth, "alice", ["ecr:*"])
    alice = boto3.client("ecr", endpoint_url=berth.url, region_name=berth.region,
                         aws_access_key_id=user_key, aws_secret_access_key=user_secret)
    alice.put_image_tag_mutability(repositoryName="audited", imageTagMutability="IMMUTABLE")
    sm = boto3.client("secretsmanager", endpoint_url=berth.url, region_name=berth.region,
                      aws_access_key_id=root_key, aws_secret_access_key=root_secret)
    sm.create_secret(Name="db", SecretString="s3cr3t-value-42")
    m = push_image(registry(berth), "audited", "v1")
    ecr.delete_repository(repositoryName="audited", force=True)

    expected_api = [
        ("ecr.amazonaws.com", "CreateRepository", None),
        ("ecr.amazonaws.com", "CreateRepository", "RepositoryAlreadyExistsException"),
        ("iam.amazonaws.com", "CreateUser", None),
        ("iam.amazonaws.com", "PutUserPolicy", None),
        ("iam.amazonaws.com", "CreateAccessKey", None),
        ("ecr.amazonaws.com", "PutImageTagMutability", None),
        ("secretsmanager.amazonaws.com", "CreateSecret", None),
    ]
    push_names = {"InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage"}

    def records():
        rs = list(reversed(audit(berth)))  # oldest first
        return rs if rs and rs[-1]["eventName"] == "DeleteRepository" else None

    rs = wait_until("the audit records", records)
    api = [(r["eventSource"], r["eventName"], r.get("errorCode")) for r in rs
           if r["eventName"] not in push_names and r["eventName"] != "DeleteRepository"]
    assert api == expected_api
    pushes = [r for r in rs if r["eventName"] in push_names]
    names = [r["eventName"] for r in pushes]
    assert names.count("PutImage") == 1 and names[-1] == "PutImage"
    assert names.count("InitiateLayerUpload") == names.count("CompleteLayerUpload") == 1 + len(layers_of(m))
    put = pushes[-1]
    assert put["requestParameters"]["imageTag"] == "v1"
    assert put["requestParameters"]["repositoryName"] == "audited"
    assert put["readOnly"] is False and put["eventType"] == "AwsApiCall"

    first = rs[0]
    assert first["eventVersion"] and first["eventCategory"] == "Management"
    assert first["userIdentity"]["type"] == "Root"
    assert first["userIdentity"]["accountId"] == berth.account_id
    assert first["recipientAccountId"] == berth.account_id
    assert first["awsRegion"] == berth.region
    assert first["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in first["userAgent"] or "botocore" in first["userAgent"]
    assert first["requestID"] == created["ResponseMetadata"]["RequestId"]
    assert first["requestParameters"] == {"repositoryName": "audited"}
    assert first["resources"][0]["ARN"].endswith(":repository/audited")
    failed = rs[1]
    assert failed["errorCode"] == "RepositoryAlreadyExistsException" and failed["errorMessage"]
    by_alice = next(r for r in rs if r["eventName"] == "PutImageTagMutability")
    assert by_alice["userIdentity"]["type"] == "IAMUser"
    assert by_alice["userIdentity"]["userName"] == "alice"

    # No secret in any record: not the secret's value, not a key's secret, not a token.
    text = json.dumps(rs)
    for secret in ("s3cr3t-value-42", root_secret, user_secret, berth.registry_password()):
        assert secret not in text

    # The filters.
    assert [r["eventName"] for r in audit(berth, "--event-name", "CreateRepository")] == [
        "CreateRepository", "CreateRepository"]
    assert {r["userIdentity"].get("userName") for r in audit(berth, "--user", "alice")} == {"alice"}
    assert all(r["resources"][0]["ARN"].endswith("/audited") for r in audit(berth, "--repository", "audited"))
    assert audit(berth, "--since", "2999-01-01T00:00:00Z") == []
    assert len(audit(berth, "--until", "2000-01-01T00:00:00Z")) == 0

    # The JSON-lines file holds the same records, once the server has written them.
    berth.stop()
    lines = [json.loads(l) for l in trail.read_text().splitlines()]
    assert sorted(r["eventID"] for r in lines) == sorted(r["eventID"] for r in rs)


def test_lifecycle_expiries_are_policy_execution_events(berth):
    berth.create_repository("pruned")
    reg = registry(berth)
    old = [push_image(reg, "pruned", None).digest for i in range(3)]
    policy = {"rules": [{"rulePriority": 1, "description": "drop untagged",
                         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                       "countNumber": 1},
                         "action": {"type": "expire"}}]}
    berth.ecr().put_lifecycle_policy(repositoryName="pruned", lifecyclePolicyText=json.dumps(policy))
    berth.admin("lifecycle", "run")
    (rec,) = audit(berth, "--event-name", "PolicyExecutionEvent")
    assert rec["eventType"] == "AwsServiceEvent"
    assert rec["userIdentity"] == {"accountId": berth.account_id, "invokedBy": "AWS Internal"}
    details = rec["serviceEventDetails"]
    assert details["repositoryName"] == "pruned"
    rule = details["lifecycleEventPolicy"]["lifecycleEventRules"][0]
    assert rule["lifecycleEventSelection"]["tagStatus"] == "Untagged"
    assert rule["lifecycleEventSelection"]["countType"] == "Image count more than"
    expired = {a["lifecycleEventImage"]["digest"] for a in details["lifecycleEventImageActions"]}
    assert len(expired) == 2 and expired <= set(old)
    assert all(a["lifecycleEventImage"]["tagStatus"] == "Untagged"
               for a in details["lifecycleEventImageActions"])


# ---------------------------------------------------------------------------
# webhooks
# ---------------------------------------------------------------------------

class Receiver:
    """An HTTP receiver that answers 503 while down, and records what it takes."""

    def __init__(self):
        self.down = True
        self.taken: list[tuple[dict, dict]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.down:
                    receiver.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.taken.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_webhooks_get_every_event_in_order_signed(berth, tmp_path):
    receiver = Receiver()
    try:
        root_key, root_secret = berth.credentials()
        sm = boto3.client("secretsmanager", endpoint_url=berth.url, region_name=berth.region,
                          aws_access_key_id=root_key, aws_secret_access_key=root_secret)
        key = "hook-key-0123456789"
        arn = sm.create_secret(Name="webhook-key", SecretString=key)["ARN"]
        cfg = tmp_path / "berth.toml"
        cfg.write_text(
            f'[[webhooks]]\nname = "ci"\nurl = "{receiver.url}"\nsecret = "{arn}"\n'
            'max_attempts = 100000\nretry_initial_ms = 20\nretry_max_ms = 200\n'
            '[[webhooks]]\nname = "gone"\nurl = "http://127.0.0.1:1/"\nmax_attempts = 2\n'
            'retry_initial_ms = 10\ndetail_types = ["ECR Image Action"]\n'
        )
        berth.stop()
        berth.extra_args = ("--config", str(cfg))
        berth.start()
        for r in ("app", "api"):
            berth.create_repository(r)
        reg = registry(berth)
        pushed = {"app": [], "api": []}
        for i, (repo, tag) in enumerate([("app", "v1"), ("api", "v1"), ("app", "v2"), ("app", "v3")]):
            m = push_image(reg, repo, tag)
            pushed[repo].append(("PUSH", tag, m.digest))
        berth.ecr().batch_delete_image(repositoryName="app", imageIds=[{"imageTag": "v2"}])
        # The image had only that tag: the image goes, and the event names the image.
        pushed["app"].append(("DELETE", None, None))
        configure(berth, [{"destinations": [dest("eu-west-1", berth.account_id)]}])
        rep = push_image(reg, "api", "v2")
        pushed["api"].append(("PUSH", "v2", rep.digest))

        wait_until("the receiver to refuse a delivery", lambda: receiver.refused > 0)
        receiver.down = False

        def events():
            seen = {}
            for headers, body in receiver.taken:
                seen.setdefault(headers["x-berth-event-id"], (headers, body))
            evs = [json.loads(b) for _, b in seen.values()]
            done = any(e["detail-type"] == "ECR Replication Action" for e in evs)
            return (list(seen.values()), evs) if done and len(evs) >= 7 else None

        taken, evs = wait_until("every event to be delivered", events, timeout=60)
        for headers, body in taken:
            expect = "sha256=" + hmac.new(key.encode(), headers["x-berth-timestamp"].encode() + b"." + body,
                                          hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["x-berth-signature"], expect)
        actions = [e for e in evs if e["detail-type"] == "ECR Image Action"]
        for e in actions:
            assert e["source"] == "aws.ecr" and e["version"] == "0"
            assert e["account"] == berth.account_id and e["region"] == berth.region
            assert e["detail"]["result"] == "SUCCESS" and e["resources"] == []
        for repo, expected in pushed.items():
            got = [(e["detail"]["action-type"], e["detail"].get("image-tag"),
                    e["detail"]["image-digest"]) for e in actions if e["detail"]["repository-name"] == repo]
            assert [(a, t) for a, t, _ in got] == [(a, t) for a, t, _ in expected], repo
            assert [d for _, _, d in got if d] and all(
                g[2] == x[2] for g, x in zip(got, expected) if x[2])
        (replication,) = [e for e in evs if e["detail-type"] == "ECR Replication Action"]
        assert replication["region"] == "eu-west-1"
        assert replication["detail"] == {
            "result": "SUCCESS", "repository-name": "api", "image-digest": rep.digest,
            "source-account": berth.account_id, "action-type": "REPLICATE",
            "source-region": berth.region, "image-tag": "v2",
        }
        assert replication["resources"] == [f"arn:aws:ecr:eu-west-1:{berth.account_id}:repository/api"]

        # The webhook that never answers keeps what it could not take as dead letters.
        def letters():
            out = berth.admin("webhooks", "dead-letters", "--webhook", "gone").stdout
            rows = [json.loads(l) for l in out.splitlines() if l.strip()]
            return rows if len(rows) >= 5 else None

        rows = wait_until("the dead letters", letters)
        assert all(r["attempts"] == 2 and r["event"]["detail-type"] == "ECR Image Action" for r in rows)
    finally:
        receiver.close()


# ---------------------------------------------------------------------------
# progress of long admin commands
# ---------------------------------------------------------------------------

def test_long_admin_commands_show_progress_on_a_terminal_only(berth):
    import shlex

    berth.create_repository("progress")
    push_image(registry(berth), "progress", "v1")
    base = [str(berth.binary), "admin", "gc", "--grace", "0", "--data-dir", str(berth.data_dir)]
    if berth.metadata_url:
        base += ["--metadata", berth.metadata_url]
    if berth.blobs_url:
        base += ["--blobs", berth.blobs_url]
    piped = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == "" and piped.stdout.startswith("gc: freed")
    # On a terminal (a pseudo-terminal from util-linux `script`): the phase line, drawn
    # in place and cleared before the summary.
    tty = subprocess.run(["script", "-qec", shlex.join(base), "/dev/null"],
                         capture_output=True, timeout=60)
    out = tty.stdout.decode()  # bytes: text mode would turn the carriage returns into newlines
    assert tty.returncode == 0, out
    assert "\r\x1b[2Kgc: blobs checked" in out
    assert "gc: freed" in out


# ---------------------------------------------------------------------------
# IAM login profiles (the console's passwords)
# ---------------------------------------------------------------------------

def test_login_profiles_as_on_iam(berth):
    c = iam(berth)
    c.create_user(UserName="carol")

    def code(call, **kw):
        with pytest.raises(ClientError) as e:
            call(**kw)
        return e.value.response["Error"]["Code"]

    assert code(c.get_login_profile, UserName="carol") == "NoSuchEntity"
    assert code(c.create_login_profile, UserName="carol", Password="weak") == "PasswordPolicyViolation"
    assert code(c.create_login_profile, UserName="nobody", Password="Good-Pass-123") == "NoSuchEntity"
    lp = c.create_login_profile(UserName="carol", Password="Good-Pass-123",
                                PasswordResetRequired=True)["LoginProfile"]
    assert lp["UserName"] == "carol" and lp["PasswordResetRequired"] is True
    assert code(c.create_login_profile, UserName="carol", Password="Good-Pass-123") == "EntityAlreadyExists"
    c.update_login_profile(UserName="carol", Password="Other-Pass-456", PasswordResetRequired=False)
    assert c.get_login_profile(UserName="carol")["LoginProfile"]["PasswordResetRequired"] is False
    # A user without iam:CreateLoginProfile is denied with IAM's text.
    creds = user_with_policy(berth, "dave", ["iam:GetUser"])
    dave = iam(berth, creds)
    with pytest.raises(ClientError) as e:
        dave.create_login_profile(UserName="dave", Password="Good-Pass-123")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "iam:CreateLoginProfile" in e.value.response["Error"]["Message"]
    # As on IAM, a user with a password is not deleted.
    with pytest.raises(ClientError) as e:
        c.delete_user(UserName="carol")
    assert (e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]) == (
        "DeleteConflict", "Cannot delete entity, must delete login profile first.")
    c.delete_login_profile(UserName="carol")
    assert code(c.delete_login_profile, UserName="carol") == "NoSuchEntity"
    # The aws CLI, and no password in the audit trail.
    out = subprocess.run(["aws", "iam", "create-login-profile", "--user-name", "carol",
                          "--password", "Cli-Pass-789!"], env=berth.aws_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["LoginProfile"]["UserName"] == "carol"

    def recorded():
        rs = audit(berth, "--event-name", "CreateLoginProfile")
        return rs if len(rs) >= 3 else None

    rs = wait_until("the login profile records", recorded)
    text = json.dumps(rs)
    for pw in ("Good-Pass-123", "Other-Pass-456", "Cli-Pass-789!", "weak"):
        assert pw not in text
    assert any(r.get("errorCode") == "PasswordPolicyViolation" for r in rs)


# ---------------------------------------------------------------------------
# usage and cost
# ---------------------------------------------------------------------------

def console_session(berth) -> requests.Session:
    """A console session signed in with the root's access key."""
    import re
    key, secret = berth.credentials()
    s = requests.Session()
    page = s.get(berth.url + "/console/signin", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = s.post(berth.url + "/console/signin", timeout=10, allow_redirects=False, data={
        "method": "keys", "access_key_id": key, "secret_access_key": secret, "csrf": token})
    assert r.status_code == 303
    return s


def test_cost_counts_storage_per_repository_and_transfer_out(berth_factory, tmp_path):
    import calendar
    import datetime as dt

    cfg = tmp_path / "berth.toml"
    cfg.write_text("[usage]\nflush_seconds = 1\nstorage_gb_month = 0.10\ntransfer_out_gb = 0.09\n")
    berth = berth_factory(extra_args=["--config", str(cfg)])
    for r in ("one", "two"):
        berth.ecr().create_repository(repositoryName=r)
    reg = registry(berth)
    data = os.urandom(5000)
    # The same layer in two repositories counts in both.
    digest = upload_blob(reg, "one", data)
    assert upload_blob(reg, "two", data) == digest
    layer = {"digest": digest, "size": len(data)}
    for _ in range(3):
        assert reg.get(f"/v2/one/blobs/{layer['digest']}").status_code == 200

    def report():
        out = berth.admin("cost", "--json").stdout
        rep = json.loads(out)
        one = next((x for x in rep["repositories"] if x["repositoryName"] == "one"), None)
        return rep if one and one["daily"][-1]["transferOutBytes"] >= 3 * layer["size"] else None

    rep = wait_until("the transfer out to be recorded", report)
    today = dt.datetime.now(dt.timezone.utc).date()
    assert rep["month"] == today.strftime("%Y-%m")
    days = calendar.monthrange(today.year, today.month)[1]
    by_name = {x["repositoryName"]: x for x in rep["repositories"]}
    one, two = by_name["one"], by_name["two"]
    assert one["daily"][-1]["date"] == today.isoformat()
    stored_one = one["daily"][-1]["storedBytes"]
    assert stored_one >= layer["size"]
    assert two["daily"][-1]["storedBytes"] >= layer["size"]
    assert abs(one["storageGbMonths"] - stored_one / 2**30 / days) < 1e-12
    assert abs(one["storageCost"] - one["storageGbMonths"] * 0.10) < 1e-12
    sent = one["daily"][-1]["transferOutBytes"]
    assert abs(one["transferOutCost"] - sent / 2**30 * 0.09) < 1e-12
    assert abs(rep["totalCost"] - sum(x["totalCost"] for x in rep["repositories"])) < 1e-12
    text = berth.admin("cost").stdout
    assert "GB-MONTHS" in text and "one" in text and "total $" in text
    assert json.loads(berth.admin("cost", "--json", "--month", "2000-01").stdout)["repositories"] == []
    # The console's page: a chart and the same repositories.
    page = console_session(berth).get(berth.url + "/console/usage", timeout=10)
    assert page.status_code == 200
    assert "<svg" in page.text and ">one<" in page.text and ">two<" in page.text
