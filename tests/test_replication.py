"""Replication: PutReplicationConfiguration (shown by DescribeRegistry), pushes that
replicate through the outbox to other regions and accounts of one deployment,
DescribeImageReplicationStatus, and backfills of existing images.

Clients: docker (push, and pull from each destination), boto3 and the aws CLI for the
operations the installed SDK knows, and raw SigV4-signed JSON for the newest members
and operations it lacks (`deleteReplication`, the four backfill operations).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ocihelpers import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_LAYER,
    Manifest,
    Registry,
    build_artifact,
    build_index,
    config_bytes,
    descriptor,
    image_manifest_dict,
    json_bytes,
    push_image,
    push_manifest,
    upload_blob,
)
from test_jobs import holder_pid, jobs, wait_until

OTHER = "111122223333"
TARGET = "AmazonEC2ContainerRegistry_V20150921."
TIMEOUT = 120


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def raw(berth, operation: str, body: dict, region: str | None = None, creds=None) -> tuple[int, dict]:
    """One ECR call as signed JSON (for what the installed botocore does not model)."""
    key, secret = creds or berth.credentials()
    data = json.dumps(body).encode()
    req = AWSRequest(method="POST", url=f"{berth.url}/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": TARGET + operation,
    })
    SigV4Auth(Credentials(key, secret), "ecr", region or berth.region).add_auth(req)
    r = requests.post(f"{berth.url}/", data=data, headers=dict(req.headers.items()), timeout=60)
    return r.status_code, r.json() if r.content else {}


def ok(berth, operation: str, body: dict, **kw) -> dict:
    status, out = raw(berth, operation, body, **kw)
    assert status == 200, (operation, status, out)
    return out


def error(berth, operation: str, body: dict, **kw) -> str:
    status, out = raw(berth, operation, body, **kw)
    assert status == 400, (operation, status, out)
    return out["__type"]


def ecr_of(berth, account: str, region: str | None = None):
    """A boto3 client as the root of `account` (created on first use)."""
    if account == berth.account_id:
        return berth.ecr(region)
    key, secret = berth.account_credentials(account)
    return boto3.client("ecr", endpoint_url=berth.url, region_name=region or berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def allow_replication_from(berth, source: str, account: str, region: str | None = None,
                           actions=("ecr:ReplicateImage", "ecr:CreateRepository")) -> None:
    """The destination's registry policy that lets `source` replicate into it (ECR's)."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReplicationAccessCrossAccount", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{source}:root"},
        "Action": list(actions),
        "Resource": f"arn:aws:ecr:{region or berth.region}:{account}:repository/*",
    }]}
    ecr_of(berth, account, region).put_registry_policy(policyText=json.dumps(policy))


def configure(berth, rules: list[dict]) -> dict:
    """PutReplicationConfiguration through the aws CLI when the rules use only what its
    model knows, else as raw JSON."""
    config = {"rules": rules}
    if any("deleteReplication" in r for r in rules):
        return ok(berth, "PutReplicationConfiguration", {"replicationConfiguration": config})
    p = subprocess.run(
        ["aws", "ecr", "put-replication-configuration", "--replication-configuration", json.dumps(config)],
        env=berth.aws_env(), capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def dest(region: str, account: str) -> dict:
    return {"region": region, "registryId": account}


def statuses(berth, repo: str, digest: str) -> dict:
    out = berth.ecr().describe_image_replication_status(repositoryName=repo, imageId={"imageDigest": digest})
    return {(s["registryId"], s["region"]): s for s in out["replicationStatuses"]}


def replicated(berth, repo: str, digest: str, expected: int) -> dict:
    """Wait until all `expected` destinations have a final status; the statuses."""
    def done():
        s = statuses(berth, repo, digest)
        return len(s) == expected and all(v["status"] != "IN_PROGRESS" for v in s.values()) and s
    return wait_until(f"replication of {repo}@{digest}", done, timeout=30)


def registry(berth, account: str | None = None, region: str | None = None) -> Registry:
    return Registry(berth.url, host=berth.registry_host(account=account, region=region),
                    auth=berth.registry_auth(region, account))


def image_in(berth, account: str, region: str, repo: str, ref: dict):
    try:
        out = ecr_of(berth, account, region).batch_get_image(repositoryName=repo, imageIds=[ref])
    except ClientError as e:
        if e.response["Error"]["Code"] == "RepositoryNotFoundException":
            return None
        raise
    return out["images"][0] if out["images"] else None


def docker(env, *args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def test_a_configuration_is_stored_shown_and_checked_as_on_ecr(berth):
    ecr = berth.ecr()
    assert ecr.describe_registry()["replicationConfiguration"] == {"rules": []}
    rules = [
        {"destinations": [dest("eu-west-1", berth.account_id), dest("us-east-1", OTHER)],
         "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]},
        {"destinations": [dest("us-west-2", berth.account_id)]},
    ]
    out = configure(berth, rules)
    assert out["replicationConfiguration"]["rules"] == rules
    shown = ecr.describe_registry()
    assert shown["registryId"] == berth.account_id
    assert shown["replicationConfiguration"]["rules"] == rules

    # deleteReplication, newer than the installed SDK, round-trips as raw JSON.
    with_deletes = [{**rules[0], "deleteReplication": {"enabled": True}}]
    assert configure(berth, with_deletes)["replicationConfiguration"]["rules"] == with_deletes
    described = ok(berth, "DescribeRegistry", {})
    assert described["replicationConfiguration"]["rules"] == with_deletes

    put = lambda cfg: error(berth, "PutReplicationConfiguration", {"replicationConfiguration": cfg})
    assert put({"rules": [{"destinations": [dest(berth.region, berth.account_id)]}]}) == "InvalidParameterException"
    assert put({"rules": [{"destinations": [dest("EU-WEST", OTHER)]}]}) == "InvalidParameterException"
    assert put({"rules": [{"destinations": [dest("eu-west-1", "12")]}]}) == "InvalidParameterException"
    assert put({"rules": [{"destinations": [], "repositoryFilters": [{"filter": "ab", "filterType": "WILDCARD"}]}]}) \
        == "InvalidParameterException"
    assert put({"rules": [{"destinations": [dest("eu-west-1", OTHER)]}] * 26}) == "InvalidParameterException"
    assert put({}) == "InvalidParameterException"
    many = [dest(f"region-{n}", OTHER) for n in range(26)]
    assert put({"rules": [{"destinations": many}]}) == "InvalidParameterException"
    # Nothing of the refused configurations was kept.
    assert ok(berth, "DescribeRegistry", {})["replicationConfiguration"]["rules"] == with_deletes

    # An empty configuration turns replication off.
    assert configure(berth, [])["replicationConfiguration"] == {"rules": []}


def test_a_user_needs_the_replication_actions(berth):
    iam = boto3.client("iam", endpoint_url=berth.url, region_name=berth.region,
                       aws_access_key_id=berth.credentials()[0], aws_secret_access_key=berth.credentials()[1])
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:Describe*", "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    creds = (key["AccessKeyId"], key["SecretAccessKey"])
    body = {"replicationConfiguration": {"rules": []}}
    wait_until("the new key to work", lambda: raw(berth, "DescribeRegistry", {}, creds=creds)[0] == 200)
    assert error(berth, "PutReplicationConfiguration", body, creds=creds) == "AccessDeniedException"
    assert error(berth, "StartReplicationBackfill", {"destination": dest("eu-west-1", OTHER)}, creds=creds) \
        == "AccessDeniedException"
    assert error(berth, "ListReplicationBackfills", {}, creds=creds) == "AccessDeniedException"


# ---------------------------------------------------------------------------
# replication of pushes
# ---------------------------------------------------------------------------


def test_a_docker_push_replicates_to_two_regions_and_a_second_account(berth, docker_env, build_test_image):
    allow_replication_from(berth, berth.account_id, OTHER)
    allow_replication_from(berth, berth.account_id, OTHER, region="eu-west-1")
    destinations = [dest("eu-west-1", berth.account_id), dest("us-east-1", OTHER), dest("eu-west-1", OTHER)]
    configure(berth, [{"destinations": destinations}])
    berth.ecr().create_repository(repositoryName="web/app")
    host = berth.registry_host()
    docker(docker_env, "login", "--username", "AWS", "--password", berth.registry_password(), host)
    tag = build_test_image()
    ref = f"{host}/web/app:v1"
    docker(docker_env, "tag", tag, ref)
    docker(docker_env, "push", ref)
    digest = berth.ecr().describe_images(repositoryName="web/app")["imageDetails"][0]["imageDigest"]

    done = replicated(berth, "web/app", digest, 3)
    assert {v["status"] for v in done.values()} == {"COMPLETE"}, done
    for d in destinations:
        account, region = d["registryId"], d["region"]
        there = f"{berth.registry_host(account=account, region=region)}/web/app:v1"
        docker(docker_env, "login", "--username", "AWS", "--password",
               berth.registry_auth(region, account)[1], berth.registry_host(account=account, region=region))
        docker(docker_env, "pull", there)
        repo_digests = docker(docker_env, "image", "inspect", "--format", "{{json .RepoDigests}}", there).stdout
        assert f"{berth.registry_host(account=account, region=region)}/web/app@{digest}" in json.loads(repo_digests)
        # The destination repository was created (with defaults: no template).
        repo = ecr_of(berth, account, region).describe_repositories(repositoryNames=["web/app"])["repositories"][0]
        assert repo["imageTagMutability"] == "MUTABLE"
        docker(docker_env, "rmi", there)
    docker(docker_env, "rmi", ref)


def test_a_destination_without_the_registry_policy_fails_with_the_reason(berth):
    configure(berth, [{"destinations": [dest(berth.region, OTHER)]}])
    ecr_of(berth, OTHER)  # the account exists, with no registry policy
    berth.ecr().create_repository(repositoryName="svc")
    image = push_image(registry(berth), "svc", "v1")
    failed = replicated(berth, "svc", image.digest, 1)[(OTHER, berth.region)]
    assert failed["status"] == "FAILED" and failed["failureCode"] == "PERMISSION_DENIED", failed
    assert image_in(berth, OTHER, berth.region, "svc", {"imageTag": "v1"}) is None

    # ReplicateImage alone does not let the source create the repository...
    allow_replication_from(berth, berth.account_id, OTHER, actions=("ecr:ReplicateImage",))
    v2 = push_image(registry(berth), "svc", "v2")
    assert replicated(berth, "svc", v2.digest, 1)[(OTHER, berth.region)]["failureCode"] == "PERMISSION_DENIED"
    # ...into one that exists, it replicates.
    ecr_of(berth, OTHER).create_repository(repositoryName="svc")
    v3 = push_image(registry(berth), "svc", "v3")
    assert replicated(berth, "svc", v3.digest, 1)[(OTHER, berth.region)]["status"] == "COMPLETE"
    assert image_in(berth, OTHER, berth.region, "svc", {"imageTag": "v3"})["imageId"]["imageDigest"] == v3.digest


def test_an_immutable_destination_tag_is_not_overwritten(berth):
    west = "eu-west-1"
    ecr_of(berth, berth.account_id, west).create_repository(repositoryName="pinned", imageTagMutability="IMMUTABLE")
    theirs = push_image(registry(berth, region=west), "pinned", "v1")
    configure(berth, [{"destinations": [dest(west, berth.account_id)]}])
    berth.ecr().create_repository(repositoryName="pinned")
    mine = push_image(registry(berth), "pinned", "v1")
    failed = replicated(berth, "pinned", mine.digest, 1)[(berth.account_id, west)]
    assert failed == {"region": west, "registryId": berth.account_id, "status": "FAILED",
                      "failureCode": "IMAGE_TAG_IMMUTABLE"}
    kept = image_in(berth, berth.account_id, west, "pinned", {"imageTag": "v1"})
    assert kept["imageId"]["imageDigest"] == theirs.digest
    # A new tag replicates as usual.
    other = push_image(registry(berth), "pinned", "v2")
    assert replicated(berth, "pinned", other.digest, 1)[(berth.account_id, west)]["status"] == "COMPLETE"


def test_the_aws_cli_shows_replication(berth):
    configure(berth, [{"destinations": [dest("eu-west-1", berth.account_id)]}])
    berth.ecr().create_repository(repositoryName="cli/app")
    image = push_image(registry(berth), "cli/app", "v1")

    def cli(*args):
        p = subprocess.run(["aws", "ecr", *args], env=berth.aws_env(), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    assert cli("describe-registry")["replicationConfiguration"]["rules"][0]["destinations"] == [
        dest("eu-west-1", berth.account_id)]
    out = wait_until("the replication", lambda: (o := cli(
        "describe-image-replication-status", "--repository-name", "cli/app", "--image-id", "imageTag=v1"))
        ["replicationStatuses"] and o["replicationStatuses"][0]["status"] == "COMPLETE" and o)
    assert out["imageId"] == {"imageDigest": image.digest, "imageTag": "v1"}
    assert out["replicationStatuses"] == [
        {"region": "eu-west-1", "registryId": berth.account_id, "status": "COMPLETE"}]


def test_deletes_and_untags_follow_only_with_delete_replication(berth):
    following, keeping = "eu-west-1", "us-west-2"
    configure(berth, [
        {"destinations": [dest(following, berth.account_id)], "deleteReplication": {"enabled": True}},
        {"destinations": [dest(keeping, berth.account_id)]},
    ])
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="rolling")
    reg = registry(berth)
    a = push_image(reg, "rolling", "a")
    b = push_image(reg, "rolling", "b")
    assert reg.put("/v2/rolling/manifests/also-b", data=b.body, headers={"Content-Type": b.media_type}).status_code == 201
    for m in (a, b):
        assert {v["status"] for v in replicated(berth, "rolling", m.digest, 2).values()} == {"COMPLETE"}
    wait_until("the extra tag to replicate",
               lambda: all(image_in(berth, berth.account_id, r, "rolling", {"imageTag": "also-b"}) for r in (following, keeping)))

    ecr.batch_delete_image(repositoryName="rolling", imageIds=[{"imageTag": "also-b"}])
    ecr.batch_delete_image(repositoryName="rolling", imageIds=[{"imageDigest": a.digest}])
    # The marker: a push after the deletes, replicated once they were handled.
    marker = push_image(reg, "rolling", "marker")
    replicated(berth, "rolling", marker.digest, 2)
    assert image_in(berth, berth.account_id, following, "rolling", {"imageTag": "also-b"}) is None
    assert image_in(berth, berth.account_id, following, "rolling", {"imageDigest": a.digest}) is None
    assert image_in(berth, berth.account_id, following, "rolling", {"imageTag": "b"}) is not None
    for ref in ({"imageTag": "also-b"}, {"imageDigest": a.digest}):
        assert image_in(berth, berth.account_id, keeping, "rolling", ref) is not None, ref


def test_referrers_and_index_children_follow_their_subject(berth):
    west = "eu-west-1"
    configure(berth, [{"destinations": [dest(west, berth.account_id)]}])
    berth.ecr().create_repository(repositoryName="multi")
    reg = registry(berth)
    children = [push_image(reg, "multi") for _ in range(2)]
    index = push_manifest(reg, "multi", "v1", build_index(children))
    sig = build_artifact(reg, "multi", subject=index.as_descriptor(), artifact_type="application/vnd.example.signature")
    push_manifest(reg, "multi", sig.digest, sig)
    replicated(berth, "multi", index.digest, 1)
    replicated(berth, "multi", sig.digest, 1)
    there = registry(berth, region=west)
    r = there.get(f"/v2/multi/manifests/v1", headers={"Accept": index.media_type})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == index.digest
    for c in children:
        assert there.get(f"/v2/multi/manifests/{c.digest}", headers={"Accept": c.media_type}).status_code == 200
    refs = there.get(f"/v2/multi/referrers/{index.digest}").json()["manifests"]
    assert [m["digest"] for m in refs] == [sig.digest]


def test_a_replication_template_shapes_the_new_repository_and_replicas_do_not_replicate_on(berth):
    west = "eu-west-1"
    ecr_west = berth.ecr(west)
    ecr_west.create_repository_creation_template(
        prefix="team", appliedFor=["REPLICATION"], imageTagMutability="IMMUTABLE",
        resourceTags=[{"Key": "origin", "Value": "replica"}],
    )
    configure(berth, [{"destinations": [dest(west, berth.account_id)]}])
    # The destination replicates back: a replica is not sent on (no loop, no chain).
    ok(berth, "PutReplicationConfiguration",
       {"replicationConfiguration": {"rules": [{"destinations": [dest(berth.region, berth.account_id)]}]}},
       region=west)
    berth.ecr().create_repository(repositoryName="team/api")
    image = push_image(registry(berth), "team/api", "v1")
    assert replicated(berth, "team/api", image.digest, 1)[(berth.account_id, west)]["status"] == "COMPLETE"
    repo = ecr_west.describe_repositories(repositoryNames=["team/api"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    tags = ecr_west.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert tags == [{"Key": "origin", "Value": "replica"}]
    back = ecr_west.describe_image_replication_status(repositoryName="team/api", imageId={"imageTag": "v1"})
    assert back["replicationStatuses"] == [], "the replica was not replicated back"


def test_status_is_in_progress_until_the_replication_job_has_run(berth_factory, tmp_path, s3_bucket):
    """Two nodes; the one holding the replication job is paused (SIGSTOP): a push through
    the other shows IN_PROGRESS, and COMPLETE once the holder runs again."""
    key = tmp_path / "master.key"
    args = ["--master-key-file", str(key), "--job-lease", "60"]
    shared = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    from conftest import fresh_s3_prefix
    blobs = fresh_s3_prefix(s3_bucket)
    a = berth_factory(extra_args=args, metadata_url=shared, blobs_url=blobs)
    b = berth_factory(extra_args=args, metadata_url=a.metadata_url, blobs_url=blobs)
    shutil.copy(a.data_dir / "credentials", b.data_dir / "credentials")
    nodes = {a.pid: a, b.pid: b}
    row = wait_until("a holder of the replication job",
                     lambda: (r := jobs(a, key).get("outbox:replication")) and r["holder"] and r)
    holder = nodes[holder_pid(row)]
    other = b if holder is a else a
    configure(other, [{"destinations": [dest("eu-west-1", other.account_id)]}])
    other.ecr().create_repository(repositoryName="paused")
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        image = push_image(registry(other), "paused", "v1")
        s = statuses(other, "paused", image.digest)
        assert s == {(other.account_id, "eu-west-1"): {
            "region": "eu-west-1", "registryId": other.account_id, "status": "IN_PROGRESS"}}, s
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    assert replicated(other, "paused", image.digest, 1)[(other.account_id, "eu-west-1")]["status"] == "COMPLETE"


# ---------------------------------------------------------------------------
# backfills
# ---------------------------------------------------------------------------


def push_many(berth, repos: list[str], per_repo: int) -> int:
    """`per_repo` images in each repository, each tagged, every tenth twice, sharing one
    config and layer: the replications a backfill plans (one per image and tag)."""
    reg = registry(berth)
    cfg = config_bytes()
    layer = os.urandom(256)
    planned = 0
    for repo in repos:
        berth.ecr().create_repository(repositoryName=repo)
        upload_blob(reg, repo, cfg)
        upload_blob(reg, repo, layer)
        session = requests.Session()
        for n in range(per_repo):
            m = image_manifest_dict(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)],
                                    annotations={"n": f"{repo}-{n}"})
            body = json_bytes(m)
            tags = [f"v{n}"] + ([f"also-{n}"] if n % 10 == 0 else [])
            for t in tags:
                r = session.put(f"{berth.url}/v2/{repo}/manifests/{t}", data=body, auth=berth.registry_auth(),
                                headers={"Content-Type": m["mediaType"], "Host": berth.registry_host()}, timeout=60)
                assert r.status_code == 201, r.text
                planned += 1
    return planned


def backfill_state(berth, backfill_id: str) -> dict:
    return ok(berth, "DescribeReplicationBackfillResults", {"replicationBackfillId": backfill_id})


def all_results(berth, backfill_id: str, **filters) -> list[dict]:
    results, token = [], None
    while True:
        body = {"replicationBackfillId": backfill_id, "maxResults": 1000, **filters}
        if token:
            body["nextToken"] = token
        page = ok(berth, "DescribeReplicationBackfillResults", body)
        results += page["results"]
        token = page.get("nextToken")
        if not token:
            return results


@pytest.fixture
def paced_berth(berth_factory, tmp_path):
    """A server whose backfills make at most 200 replications a second (so a run can
    be watched and stopped half way)."""
    cfg = tmp_path / "berth.toml"
    cfg.write_text("[replication]\nbackfill_rate = 200\n")
    return berth_factory(extra_args=["--config", str(cfg)])


def test_a_backfill_of_500_images_runs_to_complete_and_one_can_be_stopped(paced_berth):
    berth = paced_berth
    planned = push_many(berth, [f"fleet/app{n}" for n in range(5)], 100)
    assert planned == 550
    west, south = "eu-west-1", "ap-south-1"
    configure(berth, [{"destinations": [dest(west, berth.account_id), dest(south, berth.account_id)],
                       "repositoryFilters": [{"filter": "fleet/", "filterType": "PREFIX_MATCH"}]}])

    started = ok(berth, "StartReplicationBackfill", {"destination": dest(west, berth.account_id)})
    assert set(started) == {"replicationBackfillId", "registryId", "destination", "status", "startedAt"}
    assert started["status"] == "PREPARING" and started["registryId"] == berth.account_id
    run = started["replicationBackfillId"]
    # One run per destination region at a time; only configured destinations.
    assert error(berth, "StartReplicationBackfill", {"destination": dest(west, berth.account_id)}) \
        == "ReplicationBackfillInProgressException"
    assert error(berth, "StartReplicationBackfill", {"destination": dest("sa-east-1", berth.account_id)}) \
        == "InvalidParameterException"
    # Results only once the run is terminal; progress once it is planned.
    during = wait_until("progress", lambda: (s := backfill_state(berth, run)).get("progress") and s)
    assert during["results"] == [] and during["status"] in ("IN_PROGRESS", "COMPLETE")
    assert during["progress"]["totalReplicationCount"] == planned

    final = wait_until("the backfill to complete", lambda: (s := backfill_state(berth, run))["status"] == "COMPLETE" and s,
                       timeout=60)
    assert final["progress"] == {"totalReplicationCount": planned, "completedReplicationCount": planned,
                                 "failedReplicationCount": 0, "failureCodes": []}
    assert final["endedAt"] >= final["startedAt"]
    results = all_results(berth, run)
    assert len(results) == planned and {r["status"] for r in results} == {"COMPLETE"}
    assert all_results(berth, run, resultStatusFilter="FAILED") == []
    page = ok(berth, "DescribeReplicationBackfillResults", {"replicationBackfillId": run, "maxResults": 7})
    assert len(page["results"]) == 7 and page["nextToken"]
    for n in (0, 99):
        there = image_in(berth, berth.account_id, west, "fleet/app3", {"imageTag": f"v{n}"})
        assert there is not None, n
    assert image_in(berth, berth.account_id, west, "fleet/app3", {"imageTag": "also-10"}) is not None
    status = statuses(berth, "fleet/app1", results[150]["imageId"]["imageDigest"])
    assert status[(berth.account_id, west)]["status"] == "COMPLETE"

    # The second run is stopped half way: what was done stays, the rest is not done.
    second = ok(berth, "StartReplicationBackfill", {"destination": dest(south, berth.account_id)})["replicationBackfillId"]
    wait_until("some replications", lambda: (backfill_state(berth, second).get("progress") or {}).get(
        "completedReplicationCount", 0) >= 100, timeout=60)
    stopped = ok(berth, "StopReplicationBackfill", {"replicationBackfillId": second})
    assert stopped["status"] == "STOPPING"
    end = wait_until("the run to stop", lambda: (s := backfill_state(berth, second))["status"] == "STOPPED" and s)
    done = end["progress"]["completedReplicationCount"]
    assert 100 <= done < planned and end["progress"]["failedReplicationCount"] == 0
    assert len(all_results(berth, second)) == done
    assert error(berth, "StopReplicationBackfill", {"replicationBackfillId": second}) \
        == "ReplicationBackfillInvalidStatusException"

    listed = ok(berth, "ListReplicationBackfills", {})["backfills"]
    assert [b["replicationBackfillId"] for b in listed] == [second, run]
    assert [b["status"] for b in listed] == ["STOPPED", "COMPLETE"]
    first_page = ok(berth, "ListReplicationBackfills", {"maxResults": 1})
    assert len(first_page["backfills"]) == 1
    rest = ok(berth, "ListReplicationBackfills", {"maxResults": 1, "nextToken": first_page["nextToken"]})
    assert rest["backfills"][0]["replicationBackfillId"] == run and "nextToken" not in rest

    missing = "00000000-0000-4000-8000-000000000000"
    assert error(berth, "DescribeReplicationBackfillResults", {"replicationBackfillId": missing}) \
        == "ReplicationBackfillNotFoundException"
    assert error(berth, "StopReplicationBackfill", {"replicationBackfillId": "nope"}) == "InvalidParameterException"


def test_a_backfill_fails_when_half_of_its_first_hundred_fail(paced_berth):
    berth = paced_berth
    planned = push_many(berth, ["denied/app"], 150)
    ecr_of(berth, OTHER)  # exists, with no registry policy for the source
    configure(berth, [{"destinations": [dest(berth.region, OTHER)]}])
    run = ok(berth, "StartReplicationBackfill", {"destination": dest(berth.region, OTHER)})["replicationBackfillId"]
    final = wait_until("the run to fail", lambda: (s := backfill_state(berth, run))["status"] == "FAILED" and s,
                       timeout=60)
    assert final["failureCode"] == "REPLICATION_FAILURE_THRESHOLD_EXCEEDED"
    assert final["progress"] == {"totalReplicationCount": planned, "completedReplicationCount": 0,
                                 "failedReplicationCount": 100, "failureCodes": ["PERMISSION_DENIED"]}
    failed = all_results(berth, run, resultStatusFilter="FAILED")
    assert len(failed) == 100 and {r["failureCode"] for r in failed} == {"PERMISSION_DENIED"}


def test_at_most_ten_backfills_run_at_once(paced_berth):
    berth = paced_berth
    push_many(berth, ["few/app"], 300)
    regions = [f"xx-test-{n}" for n in range(11)]
    configure(berth, [{"destinations": [dest(r, berth.account_id) for r in regions]}])
    runs = [ok(berth, "StartReplicationBackfill", {"destination": dest(r, berth.account_id)})["replicationBackfillId"]
            for r in regions[:10]]
    assert error(berth, "StartReplicationBackfill", {"destination": dest(regions[10], berth.account_id)}) \
        == "LimitExceededException"
    for run in runs:
        ok(berth, "StopReplicationBackfill", {"replicationBackfillId": run})
    wait_until("the runs to stop", lambda: all(backfill_state(berth, r)["status"] == "STOPPED" for r in runs))
    assert ok(berth, "StartReplicationBackfill", {"destination": dest(regions[10], berth.account_id)})["status"] \
        == "PREPARING"


def test_a_backfill_goes_on_where_it_was_when_its_node_is_killed(berth_factory, tmp_path, s3_bucket):
    """Two nodes; the one running a backfill is killed (-9) half way: the other takes
    the job over once the lease runs out and finishes the run, each replication counted
    once."""
    from conftest import fresh_s3_prefix
    key = tmp_path / "master.key"
    cfg = tmp_path / "berth.toml"
    cfg.write_text("[replication]\nbackfill_rate = 200\n")
    args = ["--master-key-file", str(key), "--job-lease", "2", "--config", str(cfg)]
    shared = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    a = berth_factory(extra_args=args, metadata_url=shared, blobs_url=blobs)
    b = berth_factory(extra_args=args, metadata_url=a.metadata_url, blobs_url=blobs)
    shutil.copy(a.data_dir / "credentials", b.data_dir / "credentials")
    nodes = {a.pid: a, b.pid: b}
    planned = push_many(a, ["fleet/a", "fleet/b"], 300)
    configure(a, [{"destinations": [dest("eu-west-1", a.account_id)]}])
    run = ok(a, "StartReplicationBackfill", {"destination": dest("eu-west-1", a.account_id)})["replicationBackfillId"]
    row = wait_until("a node running the backfill",
                     lambda: (r := jobs(a, key).get("replication-backfill")) and r["holder"] and r)
    wait_until("a third of the run", lambda: (backfill_state(a, run).get("progress") or {}).get(
        "completedReplicationCount", 0) >= planned // 3, timeout=60)
    runner = nodes[holder_pid(row)]
    survivor = b if runner is a else a
    runner.kill()
    final = wait_until("the survivor to finish the run",
                       lambda: (s := backfill_state(survivor, run))["status"] == "COMPLETE" and s, timeout=90)
    assert final["progress"]["completedReplicationCount"] == planned
    assert final["progress"]["failedReplicationCount"] == 0
    results = all_results(survivor, run)
    assert len(results) == planned and len({(r["imageId"]["imageDigest"], r["imageId"].get("imageTag")) for r in results}) == planned
    assert jobs(survivor, key)["replication-backfill"]["fence"] > row["fence"], "the survivor took the job over"


# ---------------------------------------------------------------------------
# remote destinations (Berth's configuration, beside ECR's)
# ---------------------------------------------------------------------------


def remote_manifest(url: str, repo: str, ref: str, auth=None):
    r = requests.get(f"{url}/v2/{repo}/manifests/{ref}", auth=auth, timeout=30,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


def test_remote_replication_to_distribution_and_another_berth_survives_the_remote_going_away(berth_factory, tmp_path):
    """Rules in the config file send `prod/` images to CNCF Distribution (htpasswd; tags
    `v*` only) and to a second Berth (logged in with access keys): Distribution stopped,
    pushes queue; restarted, the queue drains, each image arriving once."""
    from upstreams import Distribution
    dist = Distribution(tmp_path / "dist", htpasswd=("robot", "s3cret")).start()
    try:
        other = berth_factory(create_on_push=True)
        cfg = tmp_path / "berth.toml"
        cfg.write_text("")
        berth = berth_factory(extra_args=["--config", str(cfg)])
        key, secret = berth.credentials()
        sm = boto3.client("secretsmanager", endpoint_url=berth.url, region_name=berth.region,
                          aws_access_key_id=key, aws_secret_access_key=secret)
        dist_secret = sm.create_secret(Name="replication/dist", SecretString=json.dumps(
            {"username": "robot", "accessToken": "s3cret"}))["ARN"]
        okey, osecret = other.credentials()
        other_secret = sm.create_secret(Name="replication/dr", SecretString=json.dumps(
            {"accessKeyId": okey, "secretAccessKey": osecret}))["ARN"]
        cfg.write_text(
            "[[replication.remotes]]\n"
            f'name = "dist"\nendpoint = "{dist.url}"\nrepository_prefix = "prod/"\ntag_pattern = "v*"\n'
            f'credentials_secret = "{dist_secret}"\n'
            "[[replication.remotes]]\n"
            f'name = "dr"\nendpoint = "{other.url}"\nrepository_prefix = "prod/"\n'
            f'credentials_secret = "{other_secret}"\nlogin_region = "{other.region}"\n'
        )
        berth.stop()
        berth.start()
        # A stopped server gave its job leases back: the new process takes the jobs at
        # once, not when the leases (30 s) run out.
        wait_until("the restarted server to hold the replication job", lambda: any(
            j["job"] == "outbox:replication" and holder_pid(j) == berth.pid
            for j in map(json.loads, berth.admin("jobs").stdout.splitlines())), timeout=10)
        for repo in ("prod/api", "dev/api"):
            berth.ecr().create_repository(repositoryName=repo)
        reg = registry(berth)
        v1 = push_image(reg, "prod/api", "v1", layers=2)
        latest = push_image(reg, "prod/api", "latest")
        push_image(reg, "dev/api", "v1")
        auth = ("robot", "s3cret")
        wait_until("v1 at Distribution", lambda: remote_manifest(dist.url, "prod/api", "v1", auth) == v1.digest)
        other_auth = other.registry_auth()
        wait_until("v1 and latest at the other Berth", lambda: (
            remote_manifest(other.url, "prod/api", "v1", other_auth) == v1.digest
            and remote_manifest(other.url, "prod/api", "latest", other_auth) == latest.digest))
        assert remote_manifest(dist.url, "prod/api", "latest", auth) is None, "the tag pattern keeps latest"
        assert remote_manifest(dist.url, "dev/api", "v1", auth) is None, "the prefix keeps dev/"
        assert remote_manifest(other.url, "dev/api", "v1", other_auth) is None

        # Distribution goes away: the push waits in the queue, retried with backoff.
        dist.stop()
        v2 = push_image(reg, "prod/api", "v2")
        wait_until("a failed attempt", lambda: "remote replication failed" in berth.log_text())
        wait_until("v2 at the other Berth", lambda: remote_manifest(other.url, "prod/api", "v2", other_auth) == v2.digest)
        dist.start()
        wait_until("v2 at Distribution once it is back",
                   lambda: remote_manifest(dist.url, "prod/api", "v2", auth) == v2.digest, timeout=60)
        tags = requests.get(f"{dist.url}/v2/prod/api/tags/list", auth=auth, timeout=30).json()["tags"]
        assert sorted(tags) == ["v1", "v2"]
        put_line = re.compile(r'"PUT (\S+) HTTP/[0-9.]+" (\d+)')
        puts = [m.group(1) for line in dist.log.read_text(errors="replace").splitlines()
                if (m := put_line.search(line)) and "/manifests/" in m.group(1)]
        assert sorted(puts) == ["/v2/prod/api/manifests/v1", "/v2/prod/api/manifests/v2"], puts
    finally:
        dist.stop()
