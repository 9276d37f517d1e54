"""Secrets Manager, the part ECR's pull-through cache needs, through boto3 and the aws CLI.

What this file covers:

* CreateSecret (string and binary values, tags, description), GetSecretValue by the
  default AWSCURRENT, by staging label and by version id, by name, full ARN and partial
  ARN; PutSecretValue and UpdateSecret moving AWSCURRENT and AWSPREVIOUS;
  ClientRequestToken as the version id (a retry is idempotent, another value conflicts);
  DescribeSecret, ListSecrets (filters, pages, planned deletions), Tag/UntagResource.
* DeleteSecret with a recovery window (the secret refuses reads, RestoreSecret brings
  it back) and ForceDeleteWithoutRecovery (gone; the name can be reused, with a new ARN).
* Secrets Manager's errors and messages for the classic mistakes.
* ARNs with the random six-character suffix; values encrypted at rest (not in the
  SQLite file, not in PostgreSQL's rows) and never in the server's log.
* IAM: an IAM user needs `secretsmanager:` actions on the secret's ARN.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import boto3
import botocore
import pytest

from test_ecr_api import error_of
from test_iam import new_user

VALUE = '{"username":"octocat","accessToken":"ghp_s3cr3tTOKENvalue0123456789"}'
ARN_RE = r"arn:aws:secretsmanager:us-east-1:\d{12}:secret:{name}-[A-Za-z0-9]{6}"


def sm_client(berth, key=None, secret=None):
    if key is None:
        key, secret = berth.credentials()
    return boto3.client("secretsmanager", endpoint_url=berth.url, region_name=berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}))


@pytest.fixture
def sm(berth):
    return sm_client(berth)


def expect_error(call, code: str, fragment: str = "") -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    got, message, status = error_of(e)
    assert got == code, (got, message)
    assert status == 400
    assert fragment in message, message
    return message


def test_a_secret_through_its_versions(sm):
    created = sm.create_secret(Name="ecr-pullthroughcache/docker-hub", SecretString=VALUE,
                               Description="Docker Hub for the cache", Tags=[{"Key": "team", "Value": "ci"}])
    arn = created["ARN"]
    assert re.fullmatch(ARN_RE.replace("{name}", "ecr-pullthroughcache/docker-hub"), arn), arn
    assert created["Name"] == "ecr-pullthroughcache/docker-hub"
    v1 = created["VersionId"]

    for secret_id in ("ecr-pullthroughcache/docker-hub", arn, arn[:-7]):
        got = sm.get_secret_value(SecretId=secret_id)
        assert (got["SecretString"], got["VersionId"], got["VersionStages"], got["ARN"]) == \
            (VALUE, v1, ["AWSCURRENT"], arn)
        assert isinstance(got["CreatedDate"], datetime)

    v2 = sm.put_secret_value(SecretId=arn, SecretString="second")
    assert v2["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "second"
    previous = sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
    assert (previous["VersionId"], previous["SecretString"]) == (v1, VALUE)
    assert sm.get_secret_value(SecretId=arn, VersionId=v1)["SecretString"] == VALUE

    token = "a" * 32 + "-third-version"
    put = dict(SecretId=arn, SecretString="third", ClientRequestToken=token)
    assert sm.put_secret_value(**put)["VersionId"] == token
    assert sm.put_secret_value(**put)["VersionId"] == token  # a retry changes nothing
    expect_error(lambda: sm.put_secret_value(**{**put, "SecretString": "other"}), "ResourceExistsException",
                 "You can't modify an existing version")

    updated = sm.update_secret(SecretId=arn, Description="rotated", SecretString="fourth")
    described = sm.describe_secret(SecretId=arn)
    assert described["Description"] == "rotated"
    assert described["Tags"] == [{"Key": "team", "Value": "ci"}]
    assert described["VersionIdsToStages"] == {updated["VersionId"]: ["AWSCURRENT"], token: ["AWSPREVIOUS"]}
    assert described["LastAccessedDate"] <= datetime.now(timezone.utc)
    assert "DeletedDate" not in described

    sm.tag_resource(SecretId=arn, Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "infra"}])
    sm.untag_resource(SecretId=arn, TagKeys=["env"])
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "team", "Value": "infra"}]


def test_binary_values_and_listing(sm):
    blob = bytes(range(256))
    arn = sm.create_secret(Name="bin", SecretBinary=blob)["ARN"]
    got = sm.get_secret_value(SecretId="bin")
    assert got["SecretBinary"] == blob and "SecretString" not in got
    for i in range(5):
        sm.create_secret(Name=f"app/s{i}", SecretString="x", Tags=[{"Key": "n", "Value": str(i)}])
    names, kw = [], {}
    while True:
        page = sm.list_secrets(MaxResults=2, **kw)
        assert len(page["SecretList"]) <= 2
        names += [s["Name"] for s in page["SecretList"]]
        if "NextToken" not in page:
            break
        kw = {"NextToken": page["NextToken"]}
    assert names == ["bin"] + [f"app/s{i}" for i in range(5)]
    only = sm.list_secrets(Filters=[{"Key": "name", "Values": ["app/"]}, {"Key": "tag-value", "Values": ["3"]}])
    assert [s["Name"] for s in only["SecretList"]] == ["app/s3"]
    (entry,) = sm.list_secrets(Filters=[{"Key": "name", "Values": ["bin"]}])["SecretList"]
    assert entry["ARN"] == arn and list(entry["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]


def test_deletion_with_a_recovery_window_and_without(sm):
    arn = sm.create_secret(Name="doomed", SecretString="v")["ARN"]
    out = sm.delete_secret(SecretId="doomed", RecoveryWindowInDays=7)
    deletion = out["DeletionDate"]
    assert timedelta(days=6, hours=23) < deletion - datetime.now(timezone.utc) <= timedelta(days=7)
    expect_error(lambda: sm.get_secret_value(SecretId="doomed"), "InvalidRequestException", "marked for deletion")
    expect_error(lambda: sm.put_secret_value(SecretId="doomed", SecretString="w"), "InvalidRequestException",
                 "marked for deletion")
    expect_error(lambda: sm.create_secret(Name="doomed", SecretString="v"), "InvalidRequestException",
                 "already scheduled for deletion")
    assert sm.describe_secret(SecretId=arn)["DeletedDate"] == deletion
    assert "doomed" not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert "doomed" in [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]]
    restored = sm.restore_secret(SecretId="doomed")
    assert (restored["ARN"], restored["Name"]) == (arn, "doomed")
    assert sm.get_secret_value(SecretId="doomed")["SecretString"] == "v"

    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    expect_error(lambda: sm.get_secret_value(SecretId=arn), "ResourceNotFoundException",
                 "Secrets Manager can't find the specified secret.")
    again = sm.create_secret(Name="doomed", SecretString="new")["ARN"]
    assert again != arn and again[:-6] == arn[:-6]


def test_the_classic_mistakes_get_secrets_managers_errors(sm):
    sm.create_secret(Name="taken", SecretString="v")
    expect_error(lambda: sm.create_secret(Name="taken", SecretString="v"), "ResourceExistsException",
                 "The operation failed because the secret taken already exists.")
    expect_error(lambda: sm.create_secret(Name="bad name!", SecretString="v"), "InvalidParameterException",
                 "Invalid name")
    expect_error(lambda: sm.create_secret(Name="both", SecretString="v", SecretBinary=b"v"),
                 "InvalidParameterException", "both a binary secret value and a string secret value")
    expect_error(lambda: sm.delete_secret(SecretId="taken", RecoveryWindowInDays=3), "InvalidParameterException",
                 "between 7 and 30 days")
    expect_error(lambda: sm.delete_secret(SecretId="taken", RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True),
                 "InvalidParameterException", "ForceDeleteWithoutRecovery")
    expect_error(lambda: sm.get_secret_value(SecretId="missing"), "ResourceNotFoundException")
    expect_error(lambda: sm.describe_secret(SecretId="missing"), "ResourceNotFoundException")
    expect_error(lambda: sm.get_secret_value(SecretId="taken", VersionStage="AWSPENDING"),
                 "ResourceNotFoundException", "staging label: AWSPENDING")
    sm.create_secret(Name="empty")
    expect_error(lambda: sm.get_secret_value(SecretId="empty"), "ResourceNotFoundException",
                 "staging label: AWSCURRENT")


def test_values_are_sealed_at_rest_and_never_logged(berth, sm):
    sm.create_secret(Name="sealed", SecretString=VALUE)
    assert sm.get_secret_value(SecretId="sealed")["SecretString"] == VALUE
    needle = b"ghp_s3cr3tTOKENvalue"
    if berth.metadata_url:
        rows = subprocess.run(["psql", berth.metadata_url, "-At", "-c", "SELECT versions FROM sm_secrets"],
                              capture_output=True, check=True, timeout=60).stdout
        assert rows.startswith(b"berth-sealed-v1:") and needle not in rows
    for path in berth.data_dir.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"{path} holds the secret in the clear"
    assert needle.decode() not in berth.stderr_path.read_text(errors="replace")


def test_iam_users_need_secretsmanager_actions_on_the_secret(berth, sm):
    arn = sm.create_secret(Name="ecr-pullthroughcache/quay", SecretString=VALUE)["ARN"]
    other = sm.create_secret(Name="other", SecretString="x")["ARN"]
    key, secret = new_user(berth, "reader", policy_doc={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:*:*:secret:ecr-pullthroughcache/*"}]})
    reader = sm_client(berth, key, secret)
    assert reader.get_secret_value(SecretId=arn)["SecretString"] == VALUE
    for call in (lambda: reader.get_secret_value(SecretId=other),
                 lambda: reader.put_secret_value(SecretId=arn, SecretString="mine"),
                 lambda: reader.create_secret(Name="new", SecretString="x")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        code, message, _ = error_of(e)
        assert code == "AccessDeniedException"
        assert "is not authorized to perform: secretsmanager:" in message
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == VALUE


def test_the_aws_cli_creates_and_reads_a_pull_through_cache_secret(berth):
    env = berth.aws_env()
    run = lambda *args: subprocess.run(["aws", "secretsmanager", *args, "--output", "json"], env=env,
                                       capture_output=True, text=True, timeout=120)
    made = run("create-secret", "--name", "ecr-pullthroughcache/ghcr", "--secret-string", VALUE)
    assert made.returncode == 0, made.stderr
    arn = json.loads(made.stdout)["ARN"]
    got = run("get-secret-value", "--secret-id", arn, "--query", "SecretString")
    assert got.returncode == 0, got.stderr
    assert json.loads(json.loads(got.stdout)) == {"username": "octocat", "accessToken": "ghp_s3cr3tTOKENvalue0123456789"}
    missing = run("get-secret-value", "--secret-id", "nope")
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
