"""The declarative bootstrap file (`berth serve --bootstrap FILE`, `berth admin bootstrap FILE`).

What this file covers:

* A file with two accounts (the default one with a fixed root key, and a second one),
  a customer managed policy, a group, users with fixed access keys, a role with a
  trust policy, a repository with mutability exclusions, tags and a cross-account
  repository policy: after start, boto3 and the aws CLI see all of it, and it is
  enforced (the CI user is denied what its policy lacks; the second account reads only
  what the repository policy grants; a user assumes the role through STS).
* Applying is idempotent and additive: restarting with the same file creates nothing
  twice, an edited file updates documents and trust policies, and what was created
  through the API in between is kept.
* A bad file stops the start with a message naming the file, the entity and IAM's
  error, before the server listens; nothing it did not name is touched.
* `berth admin bootstrap` applies a file to a running server's data.
* docs/examples/bootstrap.toml (the documented example) applies, and its CI user pushes
  with docker using the keys written in the file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from test_iam import (
    ACCT,
    OTHER,
    READ_ONLY,
    client,
    denial,
    docker_login,
    ecr_client,
    expect_denied,
    expect_fail,
    iam_client,
    key_env,
    push_policy,
    repo_arn,
    role_arn,
    sh,
    user_arn,
)

ROOT_KEY = ("AKIABOOTSTRAPROOT001", "bootstrap-root-secret-00000000000000000001")
CI_KEY = ("AKIABOOTSTRAPCI00001", "bootstrap-ci-secret-000000000000000000001")
ALICE_KEY = ("AKIABOOTSTRAPALICE01", "bootstrap-alice-secret-0000000000000000001")
READER_KEY = ("AKIABOOTSTRAPREADER1", "bootstrap-reader-secret-000000000000000001")
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "bootstrap.toml"

CROSS_ACCOUNT_PULL = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "PullFromOther",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        }
    ],
}


def toml_str(value: str) -> str:
    """A TOML literal string (JSON documents contain no single quotes)."""
    assert "'''" not in value
    return f"'''{value}'''"


def bootstrap_text(*, ci_push_repo: str = "app", trust_user: str = "alice", extra: str = "") -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user_arn(trust_user)}, "Action": "sts:AssumeRole"}
        ],
    }
    return f"""
[[account]]
id = "{ACCT}"
root_keys = [{{ id = "{ROOT_KEY[0]}", secret = "{ROOT_KEY[1]}" }}]

[[account.policy]]
name = "ci-push"
document = {toml_str(json.dumps(push_policy(ci_push_repo)))}

[[account.group]]
name = "developers"
managed_policies = ["AmazonEC2ContainerRegistryReadOnly"]

[[account.user]]
name = "ci"
managed_policies = ["ci-push"]
keys = [{{ id = "{CI_KEY[0]}", secret = "{CI_KEY[1]}" }}]

[[account.user]]
name = "alice"
groups = ["developers"]
keys = [{{ id = "{ALICE_KEY[0]}", secret = "{ALICE_KEY[1]}" }}]
inline_policies = {{ assume = {{ Version = "2012-10-17", Statement = [{{ Effect = "Allow", Action = "sts:AssumeRole", Resource = "*" }}] }} }}

[[account.role]]
name = "deploy"
managed_policies = ["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"]
trust_policy = {toml_str(json.dumps(trust))}

[[account.repository]]
name = "app"
image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION"
image_tag_mutability_exclusion_filters = ["latest", "dev-*"]
tags = {{ team = "platform" }}
policy = {toml_str(json.dumps(CROSS_ACCOUNT_PULL))}

[[account.repository]]
name = "tools/builder"
region = "eu-west-1"
scan_on_push = true

[[account]]
id = "{OTHER}"

[[account.user]]
name = "reader"
managed_policies = ["{READ_ONLY}"]
keys = [{{ id = "{READER_KEY[0]}", secret = "{READER_KEY[1]}" }}]
{extra}
"""


@pytest.fixture
def bootstrapped(berth_factory, tmp_path):
    path = tmp_path / "bootstrap.toml"
    path.write_text(bootstrap_text())
    return berth_factory(extra_args=["--bootstrap", str(path)]), path


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_bootstrap_creates_accounts_identities_and_repositories(bootstrapped):
    berth, _ = bootstrapped
    # The default account's root key is the file's, and the credentials file holds it.
    assert berth.credentials() == ROOT_KEY
    iam = iam_client(berth)
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice", "ci"]
    assert [u["UserName"] for u in iam.get_group(GroupName="developers")["Users"]] == ["alice"]
    attached = iam.list_attached_user_policies(UserName="ci")["AttachedPolicies"]
    assert attached == [{"PolicyName": "ci-push", "PolicyArn": f"arn:aws:iam::{ACCT}:policy/ci-push"}]
    assert iam.get_role(RoleName="deploy")["Role"]["Arn"] == role_arn("deploy")
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]] == [CI_KEY[0]]

    ecr = berth.ecr()
    repo = ecr.describe_repositories(repositoryNames=["app"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert [f["filter"] for f in repo["imageTagMutabilityExclusionFilters"]] == ["latest", "dev-*"]
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [
        {"Key": "team", "Value": "platform"}
    ]
    assert json.loads(ecr.get_repository_policy(repositoryName="app")["policyText"]) == CROSS_ACCOUNT_PULL
    builder = berth.ecr("eu-west-1").describe_repositories(repositoryNames=["tools/builder"])["repositories"][0]
    assert builder["imageScanningConfiguration"] == {"scanOnPush": True}
    assert ecr.describe_repositories()["repositories"] == [repo]  # eu-west-1's stays there

    # The second account exists, with its own user.
    # (GetCallerIdentity needs no permission; the reader's ReadOnly policy has no iam:*.)
    assert client(berth, "sts", *READER_KEY).get_caller_identity()["Arn"] == user_arn("reader", OTHER)


def test_bootstrap_identities_are_enforced(bootstrapped):
    berth, _ = bootstrapped
    ci = ecr_client(berth, *CI_KEY)
    assert client(berth, "sts", *CI_KEY).get_caller_identity()["Arn"] == user_arn("ci")
    ci.get_authorization_token()
    up = ci.initiate_layer_upload(repositoryName="app")
    assert up["uploadId"]
    expect_denied(
        lambda: ci.describe_images(repositoryName="app"),
        user_arn("ci"), "ecr:DescribeImages", repo_arn("app"), "identity",
    )

    # alice (ReadOnly through her group) assumes the PowerUser role the file trusts her with.
    alice = ecr_client(berth, *ALICE_KEY)
    assert alice.describe_images(repositoryName="app")["imageDetails"] == []
    creds = client(berth, "sts", *ALICE_KEY).assume_role(RoleArn=role_arn("deploy"), RoleSessionName="s1")["Credentials"]
    deploy = ecr_client(berth, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert deploy.initiate_layer_upload(repositoryName="app")["uploadId"]
    # ci is not in the trust policy.
    with pytest.raises(ClientError) as e:
        client(berth, "sts", *CI_KEY).assume_role(RoleArn=role_arn("deploy"), RoleSessionName="s1")
    assert error_code(e) == "AccessDenied"

    # The other account's reader gets what the repository policy grants, nothing more.
    reader = ecr_client(berth, *READER_KEY)
    got = reader.batch_get_image(registryId=ACCT, repositoryName="app", imageIds=[{"imageTag": "v1"}])
    assert [f["failureCode"] for f in got["failures"]] == ["ImageNotFound"]
    expect_denied(
        lambda: reader.describe_images(registryId=ACCT, repositoryName="app"),
        user_arn("reader", OTHER), "ecr:DescribeImages", repo_arn("app"), "resource",
    )


def test_restart_with_the_same_or_an_edited_file_updates_in_place(bootstrapped):
    berth, path = bootstrapped
    iam = iam_client(berth)
    user_id = iam.get_user(UserName="ci")["User"]["UserId"]
    # Made through the API between starts: kept, since the file is additive.
    iam.create_user(UserName="made-by-hand")
    berth.ecr().put_image_tag_mutability(repositoryName="app", imageTagMutability="MUTABLE")

    berth.stop()
    berth.start()
    assert "bootstrap file applied" in berth.log_text()
    iam = iam_client(berth)
    assert iam.get_user(UserName="ci")["User"]["UserId"] == user_id  # not recreated
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice", "ci", "made-by-hand"]
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]] == [CI_KEY[0]]
    # The file names the mutability, so the start brings it back.
    repo = berth.ecr().describe_repositories(repositoryNames=["app"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"

    # Edit: the push policy now names another repository, the role trusts ci, a user is added.
    path.write_text(
        bootstrap_text(
            ci_push_repo="other",
            trust_user="ci",
            extra='\n[[account.user]]\nname = "late"\n',
        )
    )
    berth.stop()
    berth.start()
    iam = iam_client(berth)
    version = iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCT}:policy/ci-push")["Policy"]["DefaultVersionId"]
    assert version == "v2"
    doc = iam.get_policy_version(PolicyArn=f"arn:aws:iam::{ACCT}:policy/ci-push", VersionId="v2")
    assert doc["PolicyVersion"]["Document"] == push_policy("other")
    ci = ecr_client(berth, *CI_KEY)
    expect_denied(
        lambda: ci.initiate_layer_upload(repositoryName="app"),
        user_arn("ci"), "ecr:InitiateLayerUpload", repo_arn("app"), "identity",
    )
    creds = client(berth, "sts", *CI_KEY).assume_role(RoleArn=role_arn("deploy"), RoleSessionName="s1")
    assert creds["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCT}:assumed-role/deploy/s1"
    # The added user went to the account it is written under (the second one).
    other_iam = iam_client(berth, *berth.account_credentials(OTHER))
    assert [u["UserName"] for u in other_iam.list_users()["Users"]] == ["late", "reader"]


def run_serve(berth_bin, tmp_path, bootstrap: Path) -> subprocess.CompletedProcess:
    """`berth serve` on a fresh data dir that is expected to refuse to start."""
    return subprocess.run(
        [str(berth_bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
         "--bootstrap", str(bootstrap)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "RUST_BACKTRACE": "0"},
    )


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            '[[account.user]]\nname = "ci"\ninline_policies = { p = \'{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}\' }\n',
            ["user ci", "inline policy p", "MalformedPolicyDocument: Policy statement must contain resources."],
        ),
        (
            '[[account.user]]\nname = "ci"\nmanaged_policies = ["NoSuchPolicy"]\n',
            ["user ci", "no managed policy named NoSuchPolicy"],
        ),
        (
            '[[account.role]]\nname = "r"\ntrust_policy = \'{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/ghost"},"Action":"sts:AssumeRole"}]}\'\n',
            ["role r", 'Invalid principal in policy: "AWS":"arn:aws:iam::000000000000:user/ghost"'],
        ),
        ('colour = "blue"\n', ["unknown field `colour`"]),
        (
            'root_keys = [{ id = "ASIANOTALONGTERMKEY1", secret = "0123456789abcdef0123" }]\n',
            ["access key id 'ASIANOTALONGTERMKEY1' must be AKIA"],
        ),
        (
            '[[account.repository]]\nname = "Bad_Name"\n',
            ["repository Bad_Name", "invalid repository name"],
        ),
        (
            '[[account.repository]]\nname = "app"\ntags = { "aws:owner" = "me" }\n',
            ["Tag keys must be 1-128 characters and not start with 'aws:'"],
        ),
        (
            '[[account.repository]]\nname = "app"\nregion = "EU-WEST"\n',
            ["'EU-WEST' is not a region name"],
        ),
    ],
    ids=["malformed-policy", "unknown-managed-policy", "trust-names-ghost", "unknown-field", "session-key-id",
         "bad-repo-name", "aws-tag-key", "bad-region"],
)
def test_bad_bootstrap_file_stops_the_start_with_a_reason(berth_bin, tmp_path, body, expected):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[account]]\nid = "{ACCT}"\n{body}')
    proc = run_serve(berth_bin, tmp_path, bad)
    assert proc.returncode != 0
    assert "berth listening" not in proc.stdout
    assert str(bad) in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr


def test_keys_in_the_file_cannot_take_over_existing_keys(bootstrapped, tmp_path, berth_bin):
    berth, _ = bootstrapped
    # The same key id, another secret: refused, and the stored key still works.
    clash = tmp_path / "clash.toml"
    clash.write_text(
        f'[[account]]\nid = "{ACCT}"\n[[account.user]]\nname = "mallory"\n'
        f'keys = [{{ id = "{CI_KEY[0]}", secret = "another-secret-0000000000000000000000001" }}]\n'
    )
    proc = berth.admin("bootstrap", str(clash), check=False)
    assert proc.returncode != 0
    assert f"access key {CI_KEY[0]} already exists with another owner or secret" in proc.stderr
    assert client(berth, "sts", *CI_KEY).get_caller_identity()["Arn"] == user_arn("ci")


def test_admin_bootstrap_applies_to_a_running_server(berth, tmp_path):
    extra = tmp_path / "more.toml"
    extra.write_text(
        f'[[account]]\nid = "{ACCT}"\n[[account.user]]\nname = "late"\n'
        f'managed_policies = ["AmazonEC2ContainerRegistryReadOnly"]\n'
        f'keys = [{{ id = "AKIALATEUSER00000001", secret = "late-user-secret-000000000000000000001" }}]\n'
        f'[[account.repository]]\nname = "late-repo"\n'
    )
    out = berth.admin("bootstrap", str(extra)).stdout
    assert out.strip() == f"applied {extra}: 1 accounts, 3 entities created"
    late = ecr_client(berth, "AKIALATEUSER00000001", "late-user-secret-000000000000000000001")
    names = [r["repositoryName"] for r in late.describe_repositories()["repositories"]]
    assert names == ["late-repo"]
    # Applying again creates nothing.
    assert berth.admin("bootstrap", str(extra)).stdout.strip() == f"applied {extra}: 1 accounts, 0 entities created"


def test_documented_example_pushes_with_docker(berth_factory, docker_env, build_test_image, tmp_path):
    """docs/examples/bootstrap.toml as written: its CI user pushes to `app` with docker."""
    berth = berth_factory(account_id="111111111111", extra_args=["--bootstrap", str(EXAMPLE)])
    text = EXAMPLE.read_text()
    ci_key = ("AKIAEXAMPLECI0000001", "example-ci-secret-00000000000000000001")
    assert all(part in text for part in ci_key)
    env = key_env(berth, docker_env, tmp_path, "ci", *ci_key)
    env["AWS_DEFAULT_REGION"] = berth.region
    host = f"127.0.0.1:{berth.port}"  # the default registry (account 111111111111)
    docker_login(env, host)
    local = build_test_image()
    sh(f"docker tag {local} {host}/app:v1 && docker push {host}/app:v1", env)
    # The tag is immutable outside the exclusions (latest, dev-*): v1 cannot move.
    other = build_test_image()
    sh(f"docker tag {other} {host}/app:v1", env)
    expect_fail(f"docker push {host}/app:v1", env, "tag invalid")
    root = client(berth, "ecr", "AKIAEXAMPLEROOT00001", "example-root-secret-0000000000000000001")
    tags = [t for i in root.describe_images(repositoryName="app")["imageDetails"] for t in i.get("imageTags", [])]
    assert tags == ["v1"]
