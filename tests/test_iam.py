"""IAM, STS and ECR authorization, end to end, with boto3, the aws CLI (v1) and docker.

What this file covers (AWS semantics throughout):

* IAM over the Query protocol on Berth's URL: users, access keys (Active/Inactive,
  the 2-key quota), roles with trust policies, inline user and role policies (boto3
  decodes the URL-encoded documents to dicts), customer managed policies and the AWS
  managed ECR/ECS policies, attach/list/detach, and the IAM errors NoSuchEntity,
  EntityAlreadyExists, MalformedPolicyDocument, DeleteConflict, LimitExceeded.
* STS: GetCallerIdentity for the account root, an IAM user and an assumed role;
  AssumeRole with trust-policy checks (a trust on the account root delegates to the
  caller's identity policies), temporary ASIA credentials, forged session tokens.
* Authorization of every ECR call as its ecr:* action: an identity-policy matrix
  (minimal push policy, ReadOnly, PowerUser, FullAccess with an explicit Deny, a fresh
  user with nothing), repository policies (same-account grant, explicit Deny, the
  account root denied by a resource policy), cross-account access (both sides must
  allow), condition keys (aws:SourceIp, ecr:ResourceTag/*, aws:RequestTag/*,
  aws:TagKeys), and the exact AccessDeniedException texts.
* The repository and registry policy APIs.
* The registry (/v2/) side: permissions are evaluated per request, not baked into the
  token; and docker with real logins: a CI user with the minimal push policy, an
  ECS-task-execution role assumed through STS, and a second account pulling through a
  repository policy.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shlex
import subprocess
from typing import Optional, Sequence

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from ocihelpers import OCI_CONFIG, OCI_LAYER, config_bytes, descriptor, image_manifest_dict, json_bytes, sha256

ACCT = "000000000000"
OTHER = "111122223333"
REGION = "us-east-1"
TIMEOUT = 300
NO_RETRY = Config(retries={"max_attempts": 1})

READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
POWER_USER = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"
FULL_ACCESS = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess"
PULL_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"
ECS_TASK_EXECUTION = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"

INVALID_TOKEN = "The security token included in the request is invalid."
PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:PutImage",
]
# A syntactically fine manifest; denied PutImage calls never get as far as checking it.
SOME_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [],
    }
)


# ---------------------------------------------------------------------------
# ARNs, policies, messages
# ---------------------------------------------------------------------------


def root_arn(account: str = ACCT) -> str:
    return f"arn:aws:iam::{account}:root"


def user_arn(name: str, account: str = ACCT) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def role_arn(name: str, account: str = ACCT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def session_arn(role: str, session: str, account: str = ACCT) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"


def repo_arn(name: str, account: str = ACCT) -> str:
    return f"arn:aws:ecr:{REGION}:{account}:repository/{name}"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(actions, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def deny(actions, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": actions, "Resource": resource, **extra}


def trust(principal: dict) -> dict:
    return policy({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


def repo_statement(effect: str, principal, actions, sid: str = "S1") -> dict:
    """A repository-policy statement (Principal required, Resource implied)."""
    return {"Sid": sid, "Effect": effect, "Principal": principal, "Action": actions}


def push_policy(repo: str) -> dict:
    """The documented minimal push policy (the one the seed tutorials hand to CI)."""
    return policy(
        {"Sid": "AllowECRLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Sid": "AllowPushImage", "Effect": "Allow", "Action": PUSH_ACTIONS, "Resource": repo_arn(repo)},
    )


def denial(principal: str, action: str, resource: str, why: str) -> str:
    """The AccessDeniedException text for `why` in identity|identity-deny|resource|resource-deny."""
    reason = {
        "identity": f"because no identity-based policy allows the {action} action",
        "identity-deny": "with an explicit deny in an identity-based policy",
        "resource": f"because no resource-based policy allows the {action} action",
        "resource-deny": "with an explicit deny in a resource-based policy",
    }[why]
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"


def error_of(excinfo) -> tuple[str, str, int]:
    e = excinfo.value.response
    return e["Error"]["Code"], e["Error"].get("Message", ""), e["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(fn, code: str, status: int, message: Optional[str] = None) -> str:
    with pytest.raises(ClientError) as e:
        fn()
    got_code, got_message, got_status = error_of(e)
    assert (got_code, got_status) == (code, status), f"{got_code} {got_status}: {got_message}"
    if message is not None:
        assert got_message == message
    return got_message


def expect_denied(fn, principal: str, action: str, resource: str, why: str) -> None:
    """An ECR (JSON protocol) denial: AccessDeniedException, HTTP 400, exact text."""
    expect_error(fn, "AccessDeniedException", 400, denial(principal, action, resource, why))


def allowed_actions(doc: dict) -> set:
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    out = set()
    for s in statements:
        if s["Effect"] == "Allow" and "Action" in s:
            out.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return out


# ---------------------------------------------------------------------------
# clients and principals
# ---------------------------------------------------------------------------


def client(berth, service: str, key: str, secret: str, token: Optional[str] = None):
    return boto3.client(
        service,
        endpoint_url=berth.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=NO_RETRY,
    )


def iam_client(berth, key: Optional[str] = None, secret: Optional[str] = None, token: Optional[str] = None):
    """IAM as (key, secret[, token]); the default account's root when no key is given."""
    if key is None:
        key, secret = berth.credentials()
    return client(berth, "iam", key, secret, token)


def sts_client(berth, key: Optional[str] = None, secret: Optional[str] = None, token: Optional[str] = None):
    if key is None:
        key, secret = berth.credentials()
    return client(berth, "sts", key, secret, token)


def ecr_client(berth, key: str, secret: str, token: Optional[str] = None):
    return client(berth, "ecr", key, secret, token)


def new_user(
    berth,
    name: str,
    policy_doc: Optional[dict] = None,
    managed_arns: Sequence[str] = (),
    admin: Optional[tuple[str, str]] = None,
) -> tuple[str, str]:
    """Create user NAME (in the account of `admin`, default: root of 000000000000) with an
    optional inline policy and managed policies; return a fresh access key pair."""
    iam = iam_client(berth, *(admin or berth.credentials()))
    iam.create_user(UserName=name)
    if policy_doc is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-inline", PolicyDocument=json.dumps(policy_doc))
    for arn in managed_arns:
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def new_role(
    berth,
    name: str,
    trusted: dict,
    policy_doc: Optional[dict] = None,
    managed_arns: Sequence[str] = (),
) -> dict:
    """Create role NAME trusting `trusted` (a Principal value); return the Role."""
    iam = iam_client(berth)
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust(trusted)))["Role"]
    if policy_doc is not None:
        iam.put_role_policy(RoleName=name, PolicyName=f"{name}-inline", PolicyDocument=json.dumps(policy_doc))
    for arn in managed_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return role


def assume(berth, caller: tuple[str, str], role: str, session: str, **kw) -> dict:
    return sts_client(berth, *caller).assume_role(RoleArn=role_arn(role), RoleSessionName=session, **kw)


def session_keys(resp: dict) -> tuple[str, str, str]:
    c = resp["Credentials"]
    return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]


def deployer(berth, name: str = "deployer") -> tuple[str, str]:
    """A user allowed to call sts:AssumeRole on any role (trust policies still apply)."""
    return new_user(berth, name, policy(allow("sts:AssumeRole")))


def seed_image(ecr, repo: str, tag: str = "latest") -> tuple[str, bytes]:
    """Push a small OCI image through the API path; return (digest, manifest bytes)."""
    blobs = [config_bytes(), os.urandom(1000)]
    for b in blobs:
        up = ecr.initiate_layer_upload(repositoryName=repo)
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=up["uploadId"], partFirstByte=0, partLastByte=len(b) - 1, layerPartBlob=b
        )
        ecr.complete_layer_upload(repositoryName=repo, uploadId=up["uploadId"], layerDigests=[sha256(b)])
    manifest = json_bytes(image_manifest_dict(descriptor(OCI_CONFIG, blobs[0]), [descriptor(OCI_LAYER, blobs[1])]))
    out = ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageTag=tag)
    return out["image"]["imageId"]["imageDigest"], manifest


def repository_exists(berth, name: str) -> bool:
    try:
        berth.ecr().describe_repositories(repositoryNames=[name])
        return True
    except berth.ecr().exceptions.RepositoryNotFoundException:
        return False


def ecr_call(ecr, op: str, repo: Optional[str]):
    """Call ECR operation OP on REPO with minimal valid arguments."""
    if op == "GetAuthorizationToken":
        return ecr.get_authorization_token()
    if op == "InitiateLayerUpload":
        return ecr.initiate_layer_upload(repositoryName=repo)
    if op == "DescribeImages":
        return ecr.describe_images(repositoryName=repo)
    if op == "ListImages":
        return ecr.list_images(repositoryName=repo)
    if op == "BatchGetImage":
        return ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}])
    if op == "PutImage":
        return ecr.put_image(repositoryName=repo, imageManifest=SOME_MANIFEST, imageTag="x")
    if op == "CreateRepository":
        return ecr.create_repository(repositoryName=repo)
    if op == "DeleteRepository":
        return ecr.delete_repository(repositoryName=repo)
    if op == "DescribeRepositories":
        return ecr.describe_repositories(repositoryNames=[repo])
    raise AssertionError(f"no call for {op}")


def registry_password(ecr) -> str:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    assert user == "AWS"
    return password


# ---------------------------------------------------------------------------
# shell helpers (aws CLI and docker)
# ---------------------------------------------------------------------------


def sh(cmd: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TIMEOUT,
    )
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


def cli_env(berth, docker_env: dict, tmp_path, name: str, **aws_vars: str) -> dict:
    """Environment for the aws CLI and docker as identity NAME: this server, no ambient AWS
    settings, a private DOCKER_CONFIG per identity, plus AWS_* variables given."""
    env = {k: v for k, v in docker_env.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_ECR=berth.url,
        AWS_ENDPOINT_URL_IAM=berth.url,
        AWS_ENDPOINT_URL_STS=berth.url,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        DOCKER_CONFIG=str(tmp_path / f"docker-config-{name}"),
    )
    env.update(aws_vars)
    return env


def key_env(berth, docker_env, tmp_path, name: str, key: str, secret: str, token: Optional[str] = None) -> dict:
    extra = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    if token:
        extra["AWS_SESSION_TOKEN"] = token
    return cli_env(berth, docker_env, tmp_path, name, **extra)


def docker_login(env: dict, host: str) -> None:
    out = sh(f"aws ecr get-login-password --region {REGION} | docker login --username AWS --password-stdin {host}", env)
    assert "Login Succeeded" in out.stdout, out.stdout + out.stderr


def root_push(berth, docker_env, tmp_path, build_test_image, repo: str, tag: str) -> str:
    """As the account root: push a fresh image to REPO:TAG, then remove it locally."""
    env = key_env(berth, docker_env, tmp_path, "root", *berth.credentials())
    host = berth.registry_host()
    docker_login(env, host)
    local = build_test_image()
    ref = f"{host}/{repo}:{tag}"
    sh(f"docker tag {local} {ref} && docker push {ref} && docker rmi {ref} {local}", env)
    return ref


# ===========================================================================
# 1. IAM CRUD
# ===========================================================================


def test_users_create_get_list_delete(berth):
    iam = iam_client(berth)
    user = iam.create_user(UserName="ci")["User"]
    assert user["UserName"] == "ci"
    assert user["Arn"] == user_arn("ci")
    assert user["Path"] == "/"
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21
    assert iam.get_user(UserName="ci")["User"]["UserId"] == user["UserId"]
    assert iam.get_user(UserName="ci")["User"]["Arn"] == user_arn("ci")

    iam.create_user(UserName="dev")
    # The account root is not an IAM user: ListUsers shows only the users created.
    assert sorted(u["UserName"] for u in iam.list_users()["Users"]) == ["ci", "dev"]
    iam.delete_user(UserName="dev")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["ci"]
    expect_error(lambda: iam.get_user(UserName="dev"), "NoSuchEntity", 404, "The user with name dev cannot be found.")


def test_access_keys_lifecycle_and_inactive_keys(berth):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    iam.put_user_policy(UserName="ci", PolicyName="login", PolicyDocument=json.dumps(policy(allow("ecr:GetAuthorizationToken"))))
    k1 = iam.create_access_key(UserName="ci")["AccessKey"]
    assert k1["UserName"] == "ci" and k1["Status"] == "Active"
    assert k1["AccessKeyId"].startswith("AKIA") and len(k1["AccessKeyId"]) == 20
    assert len(k1["SecretAccessKey"]) == 40
    k2 = iam.create_access_key(UserName="ci")["AccessKey"]
    expect_error(lambda: iam.create_access_key(UserName="ci"), "LimitExceeded", 409)

    listed = iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]
    assert {(k["AccessKeyId"], k["Status"]) for k in listed} == {(k1["AccessKeyId"], "Active"), (k2["AccessKeyId"], "Active")}
    assert all("SecretAccessKey" not in k for k in listed)

    ecr1 = ecr_client(berth, k1["AccessKeyId"], k1["SecretAccessKey"])
    sts1 = sts_client(berth, k1["AccessKeyId"], k1["SecretAccessKey"])
    ecr1.get_authorization_token()

    iam.update_access_key(UserName="ci", AccessKeyId=k1["AccessKeyId"], Status="Inactive")
    listed = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]}
    assert listed == {k1["AccessKeyId"]: "Inactive", k2["AccessKeyId"]: "Active"}
    expect_error(ecr1.get_authorization_token, "UnrecognizedClientException", 400, INVALID_TOKEN)
    expect_error(sts1.get_caller_identity, "InvalidClientTokenId", 403, INVALID_TOKEN)
    # The other key of the same user keeps working.
    ecr_client(berth, k2["AccessKeyId"], k2["SecretAccessKey"]).get_authorization_token()

    iam.update_access_key(UserName="ci", AccessKeyId=k1["AccessKeyId"], Status="Active")
    ecr1.get_authorization_token()

    iam.delete_access_key(UserName="ci", AccessKeyId=k1["AccessKeyId"])
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]] == [k2["AccessKeyId"]]
    expect_error(ecr1.get_authorization_token, "UnrecognizedClientException", 400, INVALID_TOKEN)
    expect_error(lambda: iam.delete_access_key(UserName="ci", AccessKeyId=k1["AccessKeyId"]), "NoSuchEntity", 404)


def test_roles_create_get_list_delete(berth):
    iam = iam_client(berth)
    doc = trust({"AWS": root_arn()})
    role = iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=json.dumps(doc), Description="deploys")["Role"]
    assert role["RoleName"] == "deploy"
    assert role["Arn"] == role_arn("deploy")
    assert role["Path"] == "/"
    assert role["RoleId"].startswith("AROA")
    assert role["AssumeRolePolicyDocument"] == doc  # URL-encoded JSON on the wire, a dict in boto3

    got = iam.get_role(RoleName="deploy")["Role"]
    assert got["RoleId"] == role["RoleId"]
    assert got["AssumeRolePolicyDocument"] == doc
    assert got["MaxSessionDuration"] == 3600
    assert got["Description"] == "deploys"
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["deploy"]

    iam.delete_role(RoleName="deploy")
    assert iam.list_roles()["Roles"] == []
    expect_error(lambda: iam.get_role(RoleName="deploy"), "NoSuchEntity", 404, "The role with name deploy cannot be found.")


def test_inline_user_and_role_policies_round_trip(berth):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()})))
    first = push_policy("app")
    second = policy(allow(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], repo_arn("app")))

    iam.put_user_policy(UserName="ci", PolicyName="push", PolicyDocument=json.dumps(first))
    got = iam.get_user_policy(UserName="ci", PolicyName="push")
    assert (got["UserName"], got["PolicyName"], got["PolicyDocument"]) == ("ci", "push", first)
    assert iam.list_user_policies(UserName="ci")["PolicyNames"] == ["push"]
    # PutUserPolicy with an existing name replaces the document.
    iam.put_user_policy(UserName="ci", PolicyName="push", PolicyDocument=json.dumps(second))
    assert iam.get_user_policy(UserName="ci", PolicyName="push")["PolicyDocument"] == second
    iam.delete_user_policy(UserName="ci", PolicyName="push")
    assert iam.list_user_policies(UserName="ci")["PolicyNames"] == []
    expect_error(lambda: iam.get_user_policy(UserName="ci", PolicyName="push"), "NoSuchEntity", 404)

    iam.put_role_policy(RoleName="task", PolicyName="pull", PolicyDocument=json.dumps(second))
    got = iam.get_role_policy(RoleName="task", PolicyName="pull")
    assert (got["RoleName"], got["PolicyName"], got["PolicyDocument"]) == ("task", "pull", second)
    assert iam.list_role_policies(RoleName="task")["PolicyNames"] == ["pull"]
    iam.delete_role_policy(RoleName="task", PolicyName="pull")
    assert iam.list_role_policies(RoleName="task")["PolicyNames"] == []
    expect_error(lambda: iam.get_role_policy(RoleName="task", PolicyName="pull"), "NoSuchEntity", 404)


def test_managed_policies_create_attach_list_detach_delete(berth):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()})))
    doc = policy(allow(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], repo_arn("app")))

    p = iam.create_policy(PolicyName="ecr-pull", PolicyDocument=json.dumps(doc))["Policy"]
    arn = f"arn:aws:iam::{ACCT}:policy/ecr-pull"
    assert p["Arn"] == arn and p["PolicyName"] == "ecr-pull"
    assert p["DefaultVersionId"] == "v1" and p["AttachmentCount"] == 0 and p["IsAttachable"] is True
    assert p["PolicyId"].startswith("ANPA")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PolicyId"] == p["PolicyId"]
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert version["Document"] == doc and version["IsDefaultVersion"] is True and version["VersionId"] == "v1"
    assert [x["Arn"] for x in iam.list_policies(Scope="Local")["Policies"]] == [arn]

    iam.attach_user_policy(UserName="ci", PolicyArn=arn)
    iam.attach_user_policy(UserName="ci", PolicyArn=READ_ONLY)
    attached = iam.list_attached_user_policies(UserName="ci")["AttachedPolicies"]
    assert {(a["PolicyName"], a["PolicyArn"]) for a in attached} == {
        ("ecr-pull", arn),
        ("AmazonEC2ContainerRegistryReadOnly", READ_ONLY),
    }
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    iam.attach_role_policy(RoleName="task", PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName="task")["AttachedPolicies"] == [{"PolicyName": "ecr-pull", "PolicyArn": arn}]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 2

    iam.detach_user_policy(UserName="ci", PolicyArn=arn)
    assert [a["PolicyArn"] for a in iam.list_attached_user_policies(UserName="ci")["AttachedPolicies"]] == [READ_ONLY]
    expect_error(lambda: iam.detach_user_policy(UserName="ci", PolicyArn=arn), "NoSuchEntity", 404)
    expect_error(lambda: iam.delete_policy(PolicyArn=arn), "DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    iam.detach_role_policy(RoleName="task", PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName="task")["AttachedPolicies"] == []
    iam.delete_policy(PolicyArn=arn)
    expect_error(lambda: iam.get_policy(PolicyArn=arn), "NoSuchEntity", 404)
    assert iam.list_policies(Scope="Local")["Policies"] == []


@pytest.mark.parametrize(
    "arn, path, action",
    [
        (READ_ONLY, "/", "ecr:BatchGetImage"),
        (POWER_USER, "/", "ecr:PutImage"),
        (FULL_ACCESS, "/", "ecr:*"),
        (PULL_ONLY, "/", "ecr:GetDownloadUrlForLayer"),
        (ECS_TASK_EXECUTION, "/service-role/", "ecr:GetDownloadUrlForLayer"),
    ],
    ids=lambda v: v.rsplit("/", 1)[-1] if isinstance(v, str) and v.startswith("arn:") else None,
)
def test_aws_managed_policies_exist(berth, arn, path, action):
    iam = iam_client(berth)
    p = iam.get_policy(PolicyArn=arn)["Policy"]
    assert p["Arn"] == arn
    assert p["PolicyName"] == arn.rsplit("/", 1)[1]
    assert p["Path"] == path
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=p["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert action in allowed_actions(doc)
    listed = [x["Arn"] for page in iam.get_paginator("list_policies").paginate(Scope="AWS") for x in page["Policies"]]
    assert arn in listed


def test_entity_not_found_and_already_exists(berth):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()})))
    iam.create_policy(PolicyName="p", PolicyDocument=json.dumps(policy(allow("ecr:ListImages"))))

    expect_error(lambda: iam.create_user(UserName="ci"), "EntityAlreadyExists", 409, "User with name ci already exists.")
    # IAM names are unique without regard to case.
    expect_error(lambda: iam.create_user(UserName="CI"), "EntityAlreadyExists", 409)
    expect_error(
        lambda: iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()}))),
        "EntityAlreadyExists", 409, "Role with name task already exists.",
    )
    expect_error(
        lambda: iam.create_policy(PolicyName="p", PolicyDocument=json.dumps(policy(allow("ecr:ListImages")))),
        "EntityAlreadyExists", 409,
    )

    expect_error(lambda: iam.get_user(UserName="nobody"), "NoSuchEntity", 404, "The user with name nobody cannot be found.")
    expect_error(lambda: iam.get_role(RoleName="nobody"), "NoSuchEntity", 404, "The role with name nobody cannot be found.")
    expect_error(lambda: iam.delete_user(UserName="nobody"), "NoSuchEntity", 404)
    expect_error(lambda: iam.create_access_key(UserName="nobody"), "NoSuchEntity", 404)
    expect_error(lambda: iam.get_user_policy(UserName="ci", PolicyName="nope"), "NoSuchEntity", 404)
    expect_error(lambda: iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCT}:policy/nope"), "NoSuchEntity", 404)
    expect_error(lambda: iam.attach_user_policy(UserName="nobody", PolicyArn=READ_ONLY), "NoSuchEntity", 404)
    expect_error(
        lambda: iam.attach_user_policy(UserName="ci", PolicyArn=f"arn:aws:iam::{ACCT}:policy/nope"), "NoSuchEntity", 404
    )
    expect_error(
        lambda: iam.attach_role_policy(RoleName="task", PolicyArn="arn:aws:iam::aws:policy/NoSuchAwsPolicy"), "NoSuchEntity", 404
    )


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        json.dumps(policy({"Effect": "Maybe", "Action": "ecr:ListImages", "Resource": "*"})),
        json.dumps(policy({"Effect": "Allow", "Resource": "*"})),  # no Action
        json.dumps(policy({"Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*", "Principal": "*"})),
        json.dumps({"Version": "2012-10-17"}),  # no Statement
        json.dumps(policy({"Effect": "Allow", "Action": "ListImages", "Resource": "*"})),  # no vendor prefix
    ],
    ids=["not-json", "effect-maybe", "no-action", "principal-in-identity-policy", "no-statement", "no-vendor"],
)
def test_malformed_identity_policies_are_rejected(berth, document):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()})))
    expect_error(
        lambda: iam.put_user_policy(UserName="ci", PolicyName="p", PolicyDocument=document), "MalformedPolicyDocument", 400
    )
    expect_error(
        lambda: iam.put_role_policy(RoleName="task", PolicyName="p", PolicyDocument=document), "MalformedPolicyDocument", 400
    )
    expect_error(lambda: iam.create_policy(PolicyName="p", PolicyDocument=document), "MalformedPolicyDocument", 400)
    assert iam.list_user_policies(UserName="ci")["PolicyNames"] == []
    assert iam.list_role_policies(RoleName="task")["PolicyNames"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []


@pytest.mark.parametrize(
    "document",
    [
        "[]",
        json.dumps(policy({"Effect": "Allow", "Action": "sts:AssumeRole"})),  # no Principal
        json.dumps(policy({"Effect": "Allow", "Principal": {"AWS": root_arn()}, "Action": "ecr:*"})),
        json.dumps(policy({"Effect": "Allow", "Principal": {"AWS": user_arn("ghost")}, "Action": "sts:AssumeRole"})),
    ],
    ids=["not-an-object", "no-principal", "non-sts-action", "unknown-principal"],
)
def test_malformed_trust_policies_are_rejected(berth, document):
    iam = iam_client(berth)
    expect_error(lambda: iam.create_role(RoleName="r", AssumeRolePolicyDocument=document), "MalformedPolicyDocument", 400)
    expect_error(lambda: iam.get_role(RoleName="r"), "NoSuchEntity", 404)


def test_delete_conflicts_follow_aws_order(berth):
    iam = iam_client(berth)
    iam.create_user(UserName="ci")
    key = iam.create_access_key(UserName="ci")["AccessKey"]["AccessKeyId"]
    expect_error(lambda: iam.delete_user(UserName="ci"), "DeleteConflict", 409, "Cannot delete entity, must delete access keys first.")
    iam.delete_access_key(UserName="ci", AccessKeyId=key)

    iam.put_user_policy(UserName="ci", PolicyName="p", PolicyDocument=json.dumps(policy(allow("ecr:ListImages"))))
    expect_error(lambda: iam.delete_user(UserName="ci"), "DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    iam.delete_user_policy(UserName="ci", PolicyName="p")

    iam.attach_user_policy(UserName="ci", PolicyArn=READ_ONLY)
    expect_error(lambda: iam.delete_user(UserName="ci"), "DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_user_policy(UserName="ci", PolicyArn=READ_ONLY)

    iam.delete_user(UserName="ci")
    expect_error(lambda: iam.get_user(UserName="ci"), "NoSuchEntity", 404)


def test_role_delete_conflicts(berth):
    iam = iam_client(berth)
    iam.create_role(RoleName="task", AssumeRolePolicyDocument=json.dumps(trust({"AWS": root_arn()})))
    iam.put_role_policy(RoleName="task", PolicyName="p", PolicyDocument=json.dumps(policy(allow("ecr:ListImages"))))
    expect_error(lambda: iam.delete_role(RoleName="task"), "DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    iam.delete_role_policy(RoleName="task", PolicyName="p")
    iam.attach_role_policy(RoleName="task", PolicyArn=ECS_TASK_EXECUTION)
    expect_error(lambda: iam.delete_role(RoleName="task"), "DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_role_policy(RoleName="task", PolicyArn=ECS_TASK_EXECUTION)
    iam.delete_role(RoleName="task")
    expect_error(lambda: iam.get_role(RoleName="task"), "NoSuchEntity", 404)


def test_new_user_has_no_permissions_not_even_on_itself(berth):
    key = new_user(berth, "fresh")
    ecr = ecr_client(berth, *key)
    expect_denied(ecr.get_authorization_token, user_arn("fresh"), "ecr:GetAuthorizationToken", "*", "identity")

    iam = iam_client(berth, *key)
    message = expect_error(lambda: iam.create_user(UserName="mallory"), "AccessDenied", 403)
    assert message.startswith(f"User: {user_arn('fresh')} is not authorized to perform: iam:CreateUser on resource: "), message
    expect_error(lambda: iam.attach_user_policy(UserName="fresh", PolicyArn=FULL_ACCESS), "AccessDenied", 403)
    expect_error(lambda: iam.create_access_key(UserName="fresh"), "AccessDenied", 403)

    root = iam_client(berth)
    assert [u["UserName"] for u in root.list_users()["Users"]] == ["fresh"]
    assert root.list_attached_user_policies(UserName="fresh")["AttachedPolicies"] == []
    assert len(root.list_access_keys(UserName="fresh")["AccessKeyMetadata"]) == 1


def test_iam_actions_are_granted_by_identity_policies(berth):
    key = new_user(berth, "admin", policy(allow("iam:*")))
    iam = iam_client(berth, *key)
    iam.create_user(UserName="created-by-admin")
    iam.attach_user_policy(UserName="created-by-admin", PolicyArn=READ_ONLY)
    assert iam_client(berth).get_user(UserName="created-by-admin")["User"]["Arn"] == user_arn("created-by-admin")
    # iam:* grants nothing on ECR.
    expect_denied(ecr_client(berth, *key).get_authorization_token, user_arn("admin"), "ecr:GetAuthorizationToken", "*", "identity")


# ===========================================================================
# 2. STS
# ===========================================================================


def test_get_caller_identity_for_root_user_and_assumed_role(berth):
    assert {k: v for k, v in sts_client(berth).get_caller_identity().items() if k != "ResponseMetadata"} == {
        "UserId": ACCT,
        "Account": ACCT,
        "Arn": root_arn(),
    }

    # A user with no permissions at all may still ask who it is.
    iam = iam_client(berth)
    nobody = new_user(berth, "nobody")
    me = sts_client(berth, *nobody).get_caller_identity()
    assert (me["Arn"], me["Account"]) == (user_arn("nobody"), ACCT)
    assert me["UserId"] == iam.get_user(UserName="nobody")["User"]["UserId"]

    role = new_role(berth, "R", {"AWS": root_arn()})
    resp = assume(berth, deployer(berth), "R", "s1")
    assert resp["AssumedRoleUser"] == {"Arn": session_arn("R", "s1"), "AssumedRoleId": f"{role['RoleId']}:s1"}
    me = sts_client(berth, *session_keys(resp)).get_caller_identity()
    assert (me["Arn"], me["Account"], me["UserId"]) == (session_arn("R", "s1"), ACCT, f"{role['RoleId']}:s1")


@pytest.mark.parametrize(
    "trusted, caller_may_assume, allowed",
    [
        ({"AWS": user_arn("caller")}, True, True),
        # Naming the caller itself is enough within the account: no identity policy needed.
        ({"AWS": user_arn("caller")}, False, True),
        ({"AWS": user_arn("someone-else")}, True, False),
        ({"AWS": root_arn()}, True, True),
        # A trust on the account root delegates to identity policies: without one, no.
        ({"AWS": root_arn()}, False, False),
        ({"Service": "ecs-tasks.amazonaws.com"}, True, False),
    ],
    ids=["trusts-caller", "trusts-caller-no-identity-policy", "trusts-other-user", "trusts-account", "trusts-account-no-identity-policy", "trusts-service"],
)
def test_assume_role_checks_the_trust_policy(berth, trusted, caller_may_assume, allowed):
    caller = new_user(berth, "caller", policy(allow("sts:AssumeRole")) if caller_may_assume else None)
    new_user(berth, "someone-else")
    new_role(berth, "R", trusted)
    if allowed:
        resp = assume(berth, caller, "R", "s1")
        assert resp["AssumedRoleUser"]["Arn"] == session_arn("R", "s1")
    else:
        message = expect_error(lambda: assume(berth, caller, "R", "s1"), "AccessDenied", 403)
        assert message.startswith(
            f"User: {user_arn('caller')} is not authorized to perform: sts:AssumeRole on resource: {role_arn('R')}"
        ), message


def test_update_assume_role_policy_changes_who_may_assume(berth):
    caller = new_user(berth, "caller")
    new_user(berth, "other")
    new_role(berth, "R", {"AWS": user_arn("other")})
    expect_error(lambda: assume(berth, caller, "R", "s1"), "AccessDenied", 403)
    iam = iam_client(berth)
    iam.update_assume_role_policy(RoleName="R", PolicyDocument=json.dumps(trust({"AWS": user_arn("caller")})))
    assert iam.get_role(RoleName="R")["Role"]["AssumeRolePolicyDocument"] == trust({"AWS": user_arn("caller")})
    assert assume(berth, caller, "R", "s1")["AssumedRoleUser"]["Arn"] == session_arn("R", "s1")
    message = expect_error(
        lambda: iam.update_assume_role_policy(RoleName="R", PolicyDocument=json.dumps(trust({"AWS": user_arn("ghost")}))),
        "MalformedPolicyDocument", 400,
    )
    assert "ghost" in message
    expect_error(lambda: iam.update_assume_role_policy(RoleName="nope", PolicyDocument=json.dumps(trust({"AWS": root_arn()}))),
                 "NoSuchEntity", 404)


def test_assume_role_of_a_missing_role_is_access_denied(berth):
    caller = deployer(berth)
    message = expect_error(lambda: assume(berth, caller, "ghost", "s1"), "AccessDenied", 403)
    assert message.startswith(
        f"User: {user_arn('deployer')} is not authorized to perform: sts:AssumeRole on resource: {role_arn('ghost')}"
    ), message


def test_temporary_credentials_and_forged_session_tokens(berth):
    new_role(berth, "R", {"AWS": root_arn()})
    caller = deployer(berth)
    before = dt.datetime.now(dt.timezone.utc)
    resp = assume(berth, caller, "R", "s1")
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40
    assert creds["SessionToken"]
    lifetime = (creds["Expiration"] - before).total_seconds()
    assert 3600 - 60 <= lifetime <= 3600 + 60, creds["Expiration"]
    key, secret, token = session_keys(resp)
    assert sts_client(berth, key, secret, token).get_caller_identity()["Arn"] == session_arn("R", "s1")

    i = len(token) // 2
    garbled = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    expect_error(sts_client(berth, key, secret, garbled).get_caller_identity, "InvalidClientTokenId", 403, INVALID_TOKEN)
    expect_error(
        sts_client(berth, key, secret, "FwoGZXIvYXdzEForgedSessionToken" + "x" * 200).get_caller_identity,
        "InvalidClientTokenId", 403,
    )
    expect_error(sts_client(berth, key, secret).get_caller_identity, "InvalidClientTokenId", 403)  # no token at all
    expect_error(
        ecr_client(berth, key, secret, garbled).get_authorization_token, "UnrecognizedClientException", 400, INVALID_TOKEN
    )
    # A valid token with another session's key id does not pass either.
    other_key, _, other_token = session_keys(assume(berth, caller, "R", "s2"))
    assert other_key != key
    with pytest.raises(ClientError) as e:
        sts_client(berth, key, secret, other_token).get_caller_identity()
    assert error_of(e)[0] in ("InvalidClientTokenId", "SignatureDoesNotMatch") and error_of(e)[2] == 403, error_of(e)

    # DurationSeconds may not exceed the role's MaxSessionDuration (3600 by default).
    expect_error(lambda: assume(berth, caller, "R", "long", DurationSeconds=7200), "ValidationError", 400)
    short = assume(berth, caller, "R", "short", DurationSeconds=900)["Credentials"]["Expiration"]
    assert 900 - 60 <= (short - before).total_seconds() <= 900 + 60


def test_assumed_role_acts_with_the_roles_permissions(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    seed_image(root, "app")
    new_role(berth, "reader", {"AWS": root_arn()}, managed_arns=[READ_ONLY])
    caller = deployer(berth)
    # The caller itself may not read images; the session may.
    expect_denied(
        lambda: ecr_client(berth, *caller).describe_images(repositoryName="app"),
        user_arn("deployer"), "ecr:DescribeImages", repo_arn("app"), "identity",
    )
    session = ecr_client(berth, *session_keys(assume(berth, caller, "reader", "ci-run")))
    assert len(session.describe_images(repositoryName="app")["imageDetails"]) == 1
    session.get_authorization_token()
    expect_denied(
        lambda: session.initiate_layer_upload(repositoryName="app"),
        session_arn("reader", "ci-run"), "ecr:InitiateLayerUpload", repo_arn("app"), "identity",
    )


# ===========================================================================
# 3. Authorization matrix (ECR API through boto3)
# ===========================================================================

PRINCIPALS = {
    "ci": dict(policy_doc=push_policy("app")),
    "reader": dict(managed_arns=[READ_ONLY]),
    "power": dict(managed_arns=[POWER_USER]),
    "teamdev": dict(policy_doc=policy(allow("ecr:DescribeImages", repo_arn("team/*")))),
    # FullAccess, minus upload and PutImage on app (a wildcard action in the Deny).
    "admin": dict(
        policy_doc=policy(deny(["ecr:PutImage", "ecr:*LayerUpload"], repo_arn("app"))),
        managed_arns=[FULL_ACCESS],
    ),
    "fresh": dict(),
}

# (principal, operation, repository, None if allowed else the denial reason)
MATRIX = [
    ("ci", "GetAuthorizationToken", None, None),
    ("ci", "InitiateLayerUpload", "app", None),
    ("ci", "InitiateLayerUpload", "other", "identity"),
    ("ci", "DescribeImages", "app", "identity"),
    ("ci", "BatchGetImage", "app", "identity"),
    ("reader", "GetAuthorizationToken", None, None),
    ("reader", "DescribeImages", "app", None),
    ("reader", "BatchGetImage", "app", None),
    ("reader", "ListImages", "other", None),
    ("reader", "DescribeRepositories", "app", None),
    ("reader", "PutImage", "app", "identity"),
    ("reader", "InitiateLayerUpload", "app", "identity"),
    ("reader", "CreateRepository", "new-repo", "identity"),
    ("reader", "DeleteRepository", "app", "identity"),
    ("power", "InitiateLayerUpload", "other", None),
    ("power", "CreateRepository", "new-repo", "identity"),
    ("teamdev", "DescribeImages", "team/api", None),
    ("teamdev", "DescribeImages", "app", "identity"),
    ("admin", "InitiateLayerUpload", "app", "identity-deny"),
    ("admin", "PutImage", "app", "identity-deny"),
    ("admin", "InitiateLayerUpload", "other", None),
    ("admin", "DescribeImages", "app", None),
    ("admin", "CreateRepository", "new-repo", None),
    ("fresh", "GetAuthorizationToken", None, "identity"),
    ("fresh", "DescribeRepositories", "app", "identity"),
    ("fresh", "CreateRepository", "new-repo", "identity"),
]


@pytest.mark.parametrize("who, op, repo, outcome", MATRIX, ids=[f"{w}-{o}-{(r or 'star').replace('/', '_')}" for w, o, r, _ in MATRIX])
def test_identity_policy_matrix(berth, who, op, repo, outcome):
    root = berth.ecr()
    for name in ("app", "other", "team/api"):
        root.create_repository(repositoryName=name)
    ecr = ecr_client(berth, *new_user(berth, who, **PRINCIPALS[who]))
    if outcome is None:
        assert ecr_call(ecr, op, repo)["ResponseMetadata"]["HTTPStatusCode"] == 200
        if op == "CreateRepository":
            assert repository_exists(berth, repo)
    else:
        resource = "*" if repo is None else repo_arn(repo)
        expect_denied(lambda: ecr_call(ecr, op, repo), user_arn(who), f"ecr:{op}", resource, outcome)
        if op == "CreateRepository":
            assert not repository_exists(berth, repo)
        if op == "DeleteRepository":
            assert repository_exists(berth, repo)


def test_an_existing_repositorys_policy_can_deny_creating_it_again(berth):
    """CreateRepository is authorized without the repository (it has no policy before it
    exists); when the name is taken, that repository's policy is checked before the
    caller learns it exists."""
    root = berth.ecr()
    root.create_repository(repositoryName="secret")
    root.create_repository(repositoryName="open")
    ecr = ecr_client(berth, *new_user(berth, "maker", policy(allow("ecr:CreateRepository"))))
    doc = policy(repo_statement("Deny", {"AWS": user_arn("maker")}, ["ecr:CreateRepository"]))
    root.set_repository_policy(repositoryName="secret", policyText=json.dumps(doc))
    expect_denied(
        lambda: ecr.create_repository(repositoryName="secret"),
        user_arn("maker"), "ecr:CreateRepository", repo_arn("secret"), "resource-deny",
    )
    expect_error(lambda: ecr.create_repository(repositoryName="open"), "RepositoryAlreadyExistsException", 400)
    assert ecr.create_repository(repositoryName="fresh")["repository"]["repositoryName"] == "fresh"


def test_repository_policy_grants_same_account_user_without_identity_policy(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    root.create_repository(repositoryName="other")
    _, manifest = seed_image(root, "app")
    seed_image(root, "other")
    ecr = ecr_client(berth, *new_user(berth, "dev"))
    expect_denied(
        lambda: ecr.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "latest"}]),
        user_arn("dev"), "ecr:BatchGetImage", repo_arn("app"), "identity",
    )

    doc = policy(repo_statement("Allow", {"AWS": user_arn("dev")}, ["ecr:BatchGetImage", "ecr:DescribeImages"]))
    root.set_repository_policy(repositoryName="app", policyText=json.dumps(doc))

    got = ecr.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "latest"}])
    assert got["images"][0]["imageManifest"] == manifest.decode()
    assert len(ecr.describe_images(repositoryName="app")["imageDetails"]) == 1
    # Only the actions the repository policy names, only on that repository.
    expect_denied(
        lambda: ecr.initiate_layer_upload(repositoryName="app"),
        user_arn("dev"), "ecr:InitiateLayerUpload", repo_arn("app"), "identity",
    )
    expect_denied(
        lambda: ecr.batch_get_image(repositoryName="other", imageIds=[{"imageTag": "latest"}]),
        user_arn("dev"), "ecr:BatchGetImage", repo_arn("other"), "identity",
    )


def test_repository_policy_deny_overrides_identity_allow(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    root.create_repository(repositoryName="other")
    ecr = ecr_client(berth, *new_user(berth, "dev", managed_arns=[FULL_ACCESS]))
    ecr.describe_images(repositoryName="app")

    doc = policy(repo_statement("Deny", {"AWS": user_arn("dev")}, "ecr:*"))
    root.set_repository_policy(repositoryName="app", policyText=json.dumps(doc), force=True)
    expect_denied(
        lambda: ecr.describe_images(repositoryName="app"),
        user_arn("dev"), "ecr:DescribeImages", repo_arn("app"), "resource-deny",
    )
    ecr.describe_images(repositoryName="other")


def test_account_root_is_bound_by_an_explicit_deny_in_a_repository_policy(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    seed_image(root, "app")
    fetch = lambda: root.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "latest"}])  # noqa: E731
    doc = policy(repo_statement("Deny", {"AWS": root_arn()}, "ecr:BatchGetImage"))
    root.set_repository_policy(repositoryName="app", policyText=json.dumps(doc), force=True)
    expect_denied(fetch, root_arn(), "ecr:BatchGetImage", repo_arn("app"), "resource-deny")
    assert len(root.describe_images(repositoryName="app")["imageDetails"]) == 1
    root.delete_repository_policy(repositoryName="app")
    assert len(fetch()["images"]) == 1


def test_a_policy_that_locks_the_caller_out_needs_force(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    lockout = json.dumps(policy(repo_statement("Deny", "*", "ecr:SetRepositoryPolicy")))
    message = expect_error(
        lambda: root.set_repository_policy(repositoryName="app", policyText=lockout),
        "InvalidParameterException", 400,
    )
    assert "use force" in message, message
    expect_error(lambda: root.get_repository_policy(repositoryName="app"), "RepositoryPolicyNotFoundException", 400)
    # A policy that does not touch the caller's own access needs no force.
    harmless = json.dumps(policy(repo_statement("Deny", {"AWS": root_arn(OTHER)}, "ecr:*")))
    root.set_repository_policy(repositoryName="app", policyText=harmless)

    # A user whose only grant is the repository policy may not drop itself without force.
    dev = ecr_client(berth, *new_user(berth, "dev"))
    grant = policy(repo_statement("Allow", {"AWS": user_arn("dev")}, ["ecr:SetRepositoryPolicy", "ecr:GetRepositoryPolicy"]))
    root.set_repository_policy(repositoryName="app", policyText=json.dumps(grant))
    narrower = json.dumps(policy(repo_statement("Allow", {"AWS": user_arn("dev")}, "ecr:GetRepositoryPolicy")))
    expect_error(
        lambda: dev.set_repository_policy(repositoryName="app", policyText=narrower),
        "InvalidParameterException", 400,
    )
    dev.set_repository_policy(repositoryName="app", policyText=narrower, force=True)
    expect_denied(
        lambda: dev.set_repository_policy(repositoryName="app", policyText=json.dumps(grant), force=True),
        user_arn("dev"), "ecr:SetRepositoryPolicy", repo_arn("app"), "identity",
    )

    # Forced, the root locks itself out too, and is then denied as the policy says.
    root.set_repository_policy(repositoryName="app", policyText=lockout, force=True)
    expect_denied(
        lambda: root.set_repository_policy(repositoryName="app", policyText=harmless, force=True),
        root_arn(), "ecr:SetRepositoryPolicy", repo_arn("app"), "resource-deny",
    )


def test_cross_account_access_needs_both_sides(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="shared")
    _, manifest = seed_image(root, "shared")
    other_root = berth.account_credentials(OTHER)
    other = ecr_client(berth, *other_root)
    fetch = lambda c: c.batch_get_image(  # noqa: E731
        registryId=ACCT, repositoryName="shared", imageIds=[{"imageTag": "latest"}]
    )
    expect_denied(lambda: fetch(other), root_arn(OTHER), "ecr:BatchGetImage", repo_arn("shared"), "resource")

    doc = policy(
        repo_statement(
            "Allow",
            {"AWS": root_arn(OTHER)},
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            sid="CrossAccountPull",
        )
    )
    root.set_repository_policy(repositoryName="shared", policyText=json.dumps(doc))
    assert fetch(other)["images"][0]["imageManifest"] == manifest.decode()
    expect_denied(
        lambda: other.describe_images(registryId=ACCT, repositoryName="shared"),
        root_arn(OTHER), "ecr:DescribeImages", repo_arn("shared"), "resource",
    )

    # An IAM user of the other account also needs its own account's permission.
    puller_key = new_user(berth, "puller", admin=other_root)
    puller = ecr_client(berth, *puller_key)
    expect_denied(lambda: fetch(puller), user_arn("puller", OTHER), "ecr:BatchGetImage", repo_arn("shared"), "identity")
    iam_client(berth, *other_root).put_user_policy(
        UserName="puller", PolicyName="pull", PolicyDocument=json.dumps(policy(allow("ecr:BatchGetImage", repo_arn("shared"))))
    )
    assert fetch(puller)["images"][0]["imageManifest"] == manifest.decode()


@pytest.mark.parametrize("cidr, allowed", [("127.0.0.0/8", True), ("10.0.0.0/8", False)])
def test_condition_source_ip(berth, cidr, allowed):
    berth.ecr().create_repository(repositoryName="app")
    doc = policy(allow("ecr:DescribeImages", Condition={"IpAddress": {"aws:SourceIp": cidr}}))
    ecr = ecr_client(berth, *new_user(berth, "dev", doc))
    if allowed:
        assert ecr.describe_images(repositoryName="app")["imageDetails"] == []
    else:
        expect_denied(
            lambda: ecr.describe_images(repositoryName="app"), user_arn("dev"), "ecr:DescribeImages", repo_arn("app"), "identity"
        )


@pytest.mark.parametrize("repo, allowed", [("team-a", True), ("team-b", False), ("untagged", False)])
def test_condition_resource_tag(berth, repo, allowed):
    root = berth.ecr()
    root.create_repository(repositoryName="team-a", tags=[{"Key": "team", "Value": "a"}])
    root.create_repository(repositoryName="team-b", tags=[{"Key": "team", "Value": "b"}])
    root.create_repository(repositoryName="untagged")
    doc = policy(allow("ecr:DescribeImages", Condition={"StringEquals": {"ecr:ResourceTag/team": "a"}}))
    ecr = ecr_client(berth, *new_user(berth, "dev", doc))
    if allowed:
        assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []
    else:
        expect_denied(
            lambda: ecr.describe_images(repositoryName=repo), user_arn("dev"), "ecr:DescribeImages", repo_arn(repo), "identity"
        )


@pytest.mark.parametrize(
    "tags, allowed",
    [
        ([{"Key": "team", "Value": "a"}], True),
        ([{"Key": "team", "Value": "b"}], False),
        ([], False),
        ([{"Key": "team", "Value": "a"}, {"Key": "cost-center", "Value": "x"}], False),
    ],
    ids=["team-a", "team-b", "no-tags", "extra-tag-key"],
)
def test_condition_request_tags_on_create_repository(berth, tags, allowed):
    doc = policy(
        allow(
            ["ecr:CreateRepository", "ecr:TagResource"],
            Condition={
                "StringEquals": {"aws:RequestTag/team": "a"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]},
            },
        )
    )
    ecr = ecr_client(berth, *new_user(berth, "dev", doc))
    create = lambda: ecr.create_repository(repositoryName="tagged", **({"tags": tags} if tags else {}))  # noqa: E731
    if allowed:
        arn = create()["repository"]["repositoryArn"]
        assert berth.ecr().list_tags_for_resource(resourceArn=arn)["tags"] == tags
    else:
        expect_denied(create, user_arn("dev"), "ecr:CreateRepository", repo_arn("tagged"), "identity")
        assert not repository_exists(berth, "tagged")


# ===========================================================================
# 4. Repository and registry policy APIs
# ===========================================================================


def test_repository_policy_set_get_delete(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    new_user(berth, "dev")
    doc = policy(repo_statement("Allow", {"AWS": user_arn("dev")}, ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], sid="Pull"))

    out = root.set_repository_policy(repositoryName="app", policyText=json.dumps(doc), force=True)
    assert (out["registryId"], out["repositoryName"]) == (ACCT, "app")
    assert json.loads(out["policyText"]) == doc
    got = root.get_repository_policy(repositoryName="app")
    assert (got["registryId"], got["repositoryName"]) == (ACCT, "app")
    assert json.loads(got["policyText"]) == doc

    deleted = root.delete_repository_policy(repositoryName="app")
    assert json.loads(deleted["policyText"]) == doc
    missing = f"Repository policy does not exist for the repository with name 'app' in the registry with id '{ACCT}'"
    expect_error(lambda: root.get_repository_policy(repositoryName="app"), "RepositoryPolicyNotFoundException", 400, missing)
    expect_error(lambda: root.delete_repository_policy(repositoryName="app"), "RepositoryPolicyNotFoundException", 400, missing)
    expect_error(
        lambda: root.set_repository_policy(repositoryName="nope", policyText=json.dumps(doc)), "RepositoryNotFoundException", 400
    )


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(policy({"Effect": "Allow", "Action": "ecr:BatchGetImage"})),  # no Principal
        json.dumps(policy({"Effect": "Maybe", "Principal": "*", "Action": "ecr:BatchGetImage"})),
        json.dumps(policy({"Effect": "Allow", "Principal": "*"})),  # no Action
        json.dumps(policy({"Effect": "Allow", "Principal": {"AWS": user_arn("ghost")}, "Action": "ecr:BatchGetImage"})),
        "{not json",
    ],
    ids=["no-principal", "effect-maybe", "no-action", "unknown-principal", "not-json"],
)
def test_invalid_repository_policy_is_rejected(berth, text):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    message = expect_error(
        lambda: root.set_repository_policy(repositoryName="app", policyText=text, force=True), "InvalidParameterException", 400
    )
    assert "Invalid repository policy provided" in message, message
    expect_error(lambda: root.get_repository_policy(repositoryName="app"), "RepositoryPolicyNotFoundException", 400)


def test_registry_policy_put_get_delete(berth):
    berth.account_credentials(OTHER)  # the principal named below must exist
    root = berth.ecr()
    expect_error(root.get_registry_policy, "RegistryPolicyNotFoundException", 400)
    doc = policy(
        {
            "Sid": "ReplicationAccessCrossAccount",
            "Effect": "Allow",
            "Principal": {"AWS": root_arn(OTHER)},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": f"arn:aws:ecr:{REGION}:{ACCT}:repository/*",
        }
    )
    out = root.put_registry_policy(policyText=json.dumps(doc))
    assert out["registryId"] == ACCT and json.loads(out["policyText"]) == doc
    got = root.get_registry_policy()
    assert got["registryId"] == ACCT and json.loads(got["policyText"]) == doc
    assert json.loads(root.delete_registry_policy()["policyText"]) == doc
    expect_error(root.get_registry_policy, "RegistryPolicyNotFoundException", 400)
    expect_error(root.delete_registry_policy, "RegistryPolicyNotFoundException", 400)
    expect_error(lambda: root.put_registry_policy(policyText="{not json"), "InvalidParameterException", 400)


def test_policy_apis_are_authorized_too(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    doc = policy(repo_statement("Allow", {"AWS": root_arn()}, "ecr:BatchGetImage"))
    root.set_repository_policy(repositoryName="app", policyText=json.dumps(doc))
    reader = ecr_client(berth, *new_user(berth, "reader", managed_arns=[READ_ONLY]))
    assert json.loads(reader.get_repository_policy(repositoryName="app")["policyText"]) == doc
    expect_denied(
        lambda: reader.set_repository_policy(repositoryName="app", policyText=json.dumps(doc)),
        user_arn("reader"), "ecr:SetRepositoryPolicy", repo_arn("app"), "identity",
    )
    expect_denied(
        lambda: reader.delete_repository_policy(repositoryName="app"),
        user_arn("reader"), "ecr:DeleteRepositoryPolicy", repo_arn("app"), "identity",
    )


# ===========================================================================
# 5. The registry (/v2/) side
# ===========================================================================


def test_registry_requests_are_authorized_per_request(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    seed_image(root, "app")
    key = new_user(berth, "reader", managed_arns=[READ_ONLY])
    auth = ("AWS", registry_password(ecr_client(berth, *key)))

    r = requests.get(f"{berth.url}/v2/app/tags/list", auth=auth, timeout=30)
    assert r.status_code == 200 and r.json()["tags"] == ["latest"]
    assert requests.get(f"{berth.url}/v2/app/manifests/latest", auth=auth, timeout=30).status_code == 200

    r = requests.post(f"{berth.url}/v2/app/blobs/uploads/", auth=auth, timeout=30)
    assert r.status_code == 403
    assert r.json()["errors"] == [
        {"code": "DENIED", "message": denial(user_arn("reader"), "ecr:InitiateLayerUpload", repo_arn("app"), "identity")}
    ]

    # The token names the principal; its permissions are looked up on every request.
    iam_client(berth).detach_user_policy(UserName="reader", PolicyArn=READ_ONLY)
    r = requests.get(f"{berth.url}/v2/app/tags/list", auth=auth, timeout=30)
    assert r.status_code == 403
    assert r.json()["errors"] == [
        {"code": "DENIED", "message": denial(user_arn("reader"), "ecr:ListImages", repo_arn("app"), "identity")}
    ]
    # GET /v2/ needs no action: the token still authenticates.
    assert requests.get(f"{berth.url}/v2/", auth=auth, timeout=30).status_code == 200


def test_cli_get_login_password_is_denied_without_permission(berth, tmp_path):
    key, secret = new_user(berth, "fresh")
    env = cli_env(berth, {k: v for k, v in os.environ.items()}, tmp_path, "fresh",
                  AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    expect_fail(
        "aws ecr get-login-password --region us-east-1", env,
        "AccessDeniedException",
        denial(user_arn("fresh"), "ecr:GetAuthorizationToken", "*", "identity"),
    )


# ===========================================================================
# 6. docker end to end
# ===========================================================================


def test_docker_ci_user_with_minimal_push_policy(berth, docker_env, build_test_image, tmp_path):
    root_env = key_env(berth, docker_env, tmp_path, "root", *berth.credentials())
    host = berth.registry_host()
    sh("aws ecr create-repository --repository-name app", root_env)
    sh("aws ecr create-repository --repository-name other", root_env)

    # The administrator's side, as the tutorials do it: the aws CLI against IAM.
    policy_file = tmp_path / "ecr-push-policy.json"
    policy_file.write_text(json.dumps(push_policy("app"), indent=2))
    sh("aws iam create-user --user-name ci", root_env)
    sh(f"aws iam put-user-policy --user-name ci --policy-name ecr-push --policy-document file://{shlex.quote(str(policy_file))}", root_env)
    access_key = json.loads(sh("aws iam create-access-key --user-name ci", root_env).stdout)["AccessKey"]

    # The CI side: a profile in a credentials file.
    credentials = tmp_path / "ci-credentials"
    credentials.write_text(
        f"[ci]\naws_access_key_id = {access_key['AccessKeyId']}\naws_secret_access_key = {access_key['SecretAccessKey']}\n"
    )
    ci_env = cli_env(berth, docker_env, tmp_path, "ci", AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_PROFILE="ci")
    assert json.loads(sh("aws sts get-caller-identity", ci_env).stdout)["Arn"] == user_arn("ci")
    docker_login(ci_env, host)

    local = build_test_image()
    sh(f"docker tag {local} {host}/app:v1", ci_env)
    pushed = sh(f"docker push {host}/app:v1", ci_env).stdout
    digest = pushed.split("digest: ")[1].split()[0]
    images = berth.ecr().describe_images(repositoryName="app")["imageDetails"]
    assert [(i["imageDigest"], i["imageTags"]) for i in images] == [(digest, ["v1"])]

    elsewhere = build_test_image()
    sh(f"docker tag {elsewhere} {host}/other:v1", ci_env)
    expect_fail(
        f"docker push {host}/other:v1", ci_env,
        f"denied: User: {user_arn('ci')} is not authorized to perform: ecr:",
        f"on resource: {repo_arn('other')} because no identity-based policy allows the ecr:",
    )
    assert berth.ecr().describe_images(repositoryName="other")["imageDetails"] == []
    # The push policy does not include pulls either.
    sh(f"docker rmi {host}/app:v1 {local}", ci_env)
    expect_fail(
        f"docker pull {host}/app:v1", ci_env,
        f"denied: User: {user_arn('ci')} is not authorized to perform: ecr:BatchGetImage on resource: {repo_arn('app')}",
    )


def test_docker_assumed_task_execution_role_pulls_but_cannot_push(berth, docker_env, build_test_image, tmp_path):
    berth.create_repository("app")
    ref = root_push(berth, docker_env, tmp_path, build_test_image, "app", "v1")
    host = berth.registry_host()

    new_role(berth, "ecsTaskExecutionRole", {"AWS": root_arn()}, managed_arns=[ECS_TASK_EXECUTION])
    key, secret, token = session_keys(assume(berth, deployer(berth), "ecsTaskExecutionRole", "task-1"))
    role_env = key_env(berth, docker_env, tmp_path, "task", key, secret, token)
    me = json.loads(sh("aws sts get-caller-identity", role_env).stdout)
    assert me["Arn"] == session_arn("ecsTaskExecutionRole", "task-1")

    docker_login(role_env, host)
    sh(f"docker pull {ref}", role_env)
    assert "tini version" in sh(f"docker run --rm --network none {ref}", role_env).stdout

    fresh = build_test_image()
    sh(f"docker tag {fresh} {host}/app:v2", role_env)
    expect_fail(
        f"docker push {host}/app:v2", role_env,
        f"denied: User: {session_arn('ecsTaskExecutionRole', 'task-1')} is not authorized to perform: ecr:",
    )
    tags = [t for i in berth.ecr().describe_images(repositoryName="app")["imageDetails"] for t in i.get("imageTags", [])]
    assert tags == ["v1"]


def test_docker_cross_account_pull_needs_repository_policy(berth, docker_env, build_test_image, tmp_path):
    berth.create_repository("shared")
    ref = root_push(berth, docker_env, tmp_path, build_test_image, "shared", "v1")
    host = berth.registry_host()  # the 000000000000 registry

    other_env = key_env(berth, docker_env, tmp_path, "other", *berth.account_credentials(OTHER))
    # The token of 111122223333 logs in to 000000000000's registry of the same region ...
    docker_login(other_env, host)
    # ... but opens nothing there until a repository policy allows it.
    expect_fail(
        f"docker pull {ref}", other_env,
        denial(root_arn(OTHER), "ecr:BatchGetImage", repo_arn("shared"), "resource"),
    )

    doc = policy(
        repo_statement(
            "Allow",
            {"AWS": root_arn(OTHER)},
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            sid="CrossAccountPull",
        )
    )
    berth.ecr().set_repository_policy(repositoryName="shared", policyText=json.dumps(doc))
    sh(f"docker pull {ref}", other_env)
    assert "tini version" in sh(f"docker run --rm --network none {ref}", other_env).stdout

    fresh = build_test_image()
    sh(f"docker tag {fresh} {host}/shared:v2", other_env)
    expect_fail(
        f"docker push {host}/shared:v2", other_env,
        f"denied: User: {root_arn(OTHER)} is not authorized to perform: ecr:",
    )
