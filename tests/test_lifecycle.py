"""Lifecycle policies, end to end: the API (boto3 and the aws CLI), previews, and
execution by `berth admin lifecycle run` (whose `--at` is the injectable clock for
time-based rules) and by the server's background job.

What this file covers:

* Put/Get/DeleteLifecyclePolicy: the text echoed verbatim, LifecyclePolicyNotFoundException,
  ECR's validation messages for bad documents, the 100-character minimum, and
  authorization as ecr:PutLifecyclePolicy / ecr:GetLifecyclePolicy.
* Start/GetLifecyclePolicyPreview: the images a policy would act on, with rule priority
  and upper-case action, the summary, filters and pagination; nothing is deleted.
* Execution equals the preview: the previewed images disappear from ListImages and from
  the registry (/v2/ manifests answer MANIFEST_UNKNOWN), the rest still pull, each action
  is an event, and GetLifecyclePolicy reports lastEvaluatedAt.
* Time-based rules (sinceImagePushed) evaluated at a chosen time, without sleeping.
* The aws CLI flow of ECR's lifecycle tutorial (put-lifecycle-policy with file://,
  start/get preview).
* The background job (`--lifecycle-interval 1`) applies policies by itself.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests

from test_iam import (
    READ_ONLY,
    ecr_client,
    expect_denied,
    expect_error,
    new_user,
    repo_arn,
    seed_image,
    sh,
    user_arn,
)

UNTAGGED_14_DAYS = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "Expire untagged images older than 14 days",
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
            "action": {"type": "expire"},
        }
    ]
}


def keep_newest(prefix: str, n: int, priority: int = 1) -> dict:
    return {
        "rulePriority": priority,
        "description": f"Keep the newest {n} {prefix}* images",
        "selection": {"tagStatus": "tagged", "tagPrefixList": [prefix], "countType": "imageCountMoreThan", "countNumber": n},
        "action": {"type": "expire"},
    }


def push_tagged(ecr, repo: str, tags: list[str]) -> dict[str, str]:
    """Push one image per tag, in order; tag -> digest."""
    return {t: seed_image(ecr, repo, t)[0] for t in tags}


def newest_first(ecr, repo: str, digests: list[str]) -> list[str]:
    """The digests by push time, newest first (ties by digest, as the evaluator breaks them)."""
    details = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": d} for d in digests])["imageDetails"]
    pushed = {d["imageDigest"]: d["imagePushedAt"].timestamp() for d in details}
    return sorted(digests, key=lambda d: (-round(pushed[d] * 1000), d))


def untag(ecr, repo: str, digest: str, tag: str, other_tag: str) -> str:
    """Leave `digest` untagged by moving its only tag onto the image of `other_tag`."""
    manifest = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": other_tag}])["images"][0]["imageManifest"]
    ecr.put_image(repositoryName=repo, imageTag=tag, imageManifest=manifest)
    assert digest not in {i["imageDigest"] for i in ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]}
    return digest


def lifecycle_run(berth, at: dt.datetime | None = None) -> str:
    args = ["lifecycle", "run"]
    if at is not None:
        args += ["--at", at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return berth.admin(*args).stdout.strip()


def listed_digests(ecr, repo: str) -> set[str]:
    return {i["imageDigest"] for i in ecr.list_images(repositoryName=repo)["imageIds"]}


# ---------------------------------------------------------------------------
# the policy API
# ---------------------------------------------------------------------------


def test_put_get_delete_lifecycle_policy(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    expect_error(lambda: ecr.get_lifecycle_policy(repositoryName="app"), "LifecyclePolicyNotFoundException", 400,
                 "Lifecycle policy does not exist for the repository with name 'app' in the registry with id '000000000000'")
    text = json.dumps(UNTAGGED_14_DAYS, indent=2)
    out = ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=text)
    assert (out["registryId"], out["repositoryName"], out["lifecyclePolicyText"]) == ("000000000000", "app", text)
    got = ecr.get_lifecycle_policy(repositoryName="app")
    assert got["lifecyclePolicyText"] == text
    # ECR always answers lastEvaluatedAt: the epoch while the policy has never run.
    assert got["lastEvaluatedAt"].timestamp() == 0
    deleted = ecr.delete_lifecycle_policy(repositoryName="app")
    assert deleted["lifecyclePolicyText"] == text
    assert deleted["lastEvaluatedAt"].timestamp() == 0
    expect_error(lambda: ecr.delete_lifecycle_policy(repositoryName="app"), "LifecyclePolicyNotFoundException", 400)
    expect_error(lambda: ecr.put_lifecycle_policy(repositoryName="nope", lifecyclePolicyText=text),
                 "RepositoryNotFoundException", 400)


PREFIX = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "


@pytest.mark.parametrize(
    "doc, detail",
    [
        ("x" * 120, "Could not map policyString into LifecyclePolicy."),
        ({"Rules": [], "padding": "x" * 100}, 'object instance has properties which are not allowed by the schema: (["Rules","padding"])'),
        ({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "sometimes", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]},
         'instance value (sometimes) not found in enum :(possible values: ["any","tagged","untagged"])'),
        ({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}, "action": {"type": "expire"}}]},
         "numeric instance is lower than the required minimum (minimum: 1, found: 0)"),
        ({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
                    {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]},
         "The rule with tagStatus any must have the highest rulePriority"),
        ({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]},
         "tagPrefixList or tagPatternList is required when tagStatus is tagged"),
        ({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]},
         "countUnit cannot be used with countType imageCountMoreThan"),
    ],
    ids=["not-json", "unknown-keys", "bad-tag-status", "zero-count", "any-not-last", "tagged-without-list", "unit-with-count"],
)
def test_invalid_lifecycle_policies_are_rejected_with_ecrs_message(berth, doc, detail):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    text = doc if isinstance(doc, str) else json.dumps(doc)
    assert len(text) >= 100
    message = expect_error(lambda: ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=text),
                           "InvalidParameterException", 400)
    assert message == PREFIX + detail + "'"
    expect_error(lambda: ecr.get_lifecycle_policy(repositoryName="app"), "LifecyclePolicyNotFoundException", 400)


def test_short_policy_text_fails_validation(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    # boto3 checks the 100-character minimum itself; the aws CLI's botocore does too, so
    # send it raw through a client with validation off.
    from botocore.config import Config
    import boto3

    raw = boto3.client(
        "ecr", endpoint_url=berth.url, region_name=berth.region,
        aws_access_key_id=berth.credentials()[0], aws_secret_access_key=berth.credentials()[1],
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    message = expect_error(lambda: raw.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText='{"rules":[]}'),
                           "InvalidParameterException", 400)
    assert message.endswith("'Member must have length greater than or equal to 100'")


def test_lifecycle_operations_are_authorized(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    root.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps(UNTAGGED_14_DAYS))
    reader = ecr_client(berth, *new_user(berth, "reader", managed_arns=[READ_ONLY]))
    assert json.loads(reader.get_lifecycle_policy(repositoryName="app")["lifecyclePolicyText"]) == UNTAGGED_14_DAYS
    expect_denied(
        lambda: reader.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps(UNTAGGED_14_DAYS)),
        user_arn("reader"), "ecr:PutLifecyclePolicy", repo_arn("app"), "identity",
    )
    expect_denied(
        lambda: reader.start_lifecycle_policy_preview(repositoryName="app"),
        user_arn("reader"), "ecr:StartLifecyclePolicyPreview", repo_arn("app"), "identity",
    )


# ---------------------------------------------------------------------------
# preview and execution
# ---------------------------------------------------------------------------


def test_preview_lists_what_execution_then_does(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    prod = push_tagged(ecr, "app", ["prod-1", "prod-2", "prod-3", "prod-4", "prod-5"])
    dev = push_tagged(ecr, "app", ["dev-1", "dev-2"])
    untagged = untag(ecr, "app", seed_image(ecr, "app", "moving")[0], "moving", "dev-1")
    policy = {"rules": [keep_newest("prod", 2, 1), keep_newest("dev", 5, 2)]}
    text = json.dumps(policy)
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=text)

    started = ecr.start_lifecycle_policy_preview(repositoryName="app")
    assert (started["status"], started["lifecyclePolicyText"]) == ("IN_PROGRESS", text)
    preview = ecr.get_lifecycle_policy_preview(repositoryName="app")
    assert preview["status"] == "COMPLETE"
    doomed = newest_first(ecr, "app", list(prod.values()))[2:]
    results = preview["previewResults"]
    assert sorted(r["imageDigest"] for r in results) == sorted(doomed)
    assert {(r["action"]["type"], r["appliedRulePriority"]) for r in results} == {("EXPIRE", 1)}
    assert all(r["imageTags"][0].startswith("prod-") for r in results)
    # Oldest first.
    assert [r["imageDigest"] for r in results] == list(reversed(doomed))
    assert preview["summary"] == {"expiringImageTotalCount": 3}
    # The preview deletes nothing.
    assert len(listed_digests(ecr, "app")) == 8

    # Pagination and filters.
    page = ecr.get_lifecycle_policy_preview(repositoryName="app", maxResults=2)
    assert len(page["previewResults"]) == 2 and "nextToken" in page
    rest = ecr.get_lifecycle_policy_preview(repositoryName="app", maxResults=2, nextToken=page["nextToken"])
    assert [r["imageDigest"] for r in page["previewResults"] + rest["previewResults"]] == [r["imageDigest"] for r in results]
    assert "nextToken" not in rest
    assert ecr.get_lifecycle_policy_preview(repositoryName="app", filter={"tagStatus": "UNTAGGED"})["previewResults"] == []
    one = ecr.get_lifecycle_policy_preview(repositoryName="app", imageIds=[{"imageDigest": doomed[0]}])["previewResults"]
    assert [r["imageDigest"] for r in one] == [doomed[0]]

    assert lifecycle_run(berth) == "lifecycle: 1 repositories evaluated, 3 images expired, 0 transitioned to archive"
    left = listed_digests(ecr, "app")
    assert left.isdisjoint(doomed)
    assert set(dev.values()) | {untagged} | (set(prod.values()) - set(doomed)) == left

    # Gone from the registry too; survivors still pull.
    auth = berth.registry_auth()
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    gone = requests.get(f"{berth.url}/v2/app/manifests/{doomed[0]}", auth=auth, headers=accept, timeout=30)
    assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    kept = requests.get(f"{berth.url}/v2/app/manifests/prod-5", auth=auth, headers=accept, timeout=30)
    assert kept.status_code == 200

    # Recorded: one event per image, and the evaluation time.
    events = [json.loads(line) for line in berth.admin("lifecycle", "events").stdout.splitlines()]
    assert sorted(e["imageDigest"] for e in events) == sorted(doomed)
    assert {(e["action"], e["appliedRulePriority"], e["repositoryName"]) for e in events} == {("EXPIRE", 1, "app")}
    assert "lastEvaluatedAt" in ecr.get_lifecycle_policy(repositoryName="app")

    # Applying again changes nothing.
    assert lifecycle_run(berth).endswith("0 images expired, 0 transitioned to archive")


def test_time_based_rules_run_at_a_chosen_time(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    old, _ = seed_image(ecr, "app", "temp")
    tagged, _ = seed_image(ecr, "app", "v1")
    untag(ecr, "app", old, "temp", "v1")
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps(UNTAGGED_14_DAYS))
    now = dt.datetime.now(dt.timezone.utc)

    assert lifecycle_run(berth, now + dt.timedelta(days=13)).endswith("0 images expired, 0 transitioned to archive")
    assert old in listed_digests(ecr, "app")
    assert lifecycle_run(berth, now + dt.timedelta(days=15)).endswith("1 images expired, 0 transitioned to archive")
    assert listed_digests(ecr, "app") == {tagged}


def test_cli_lifecycle_tutorial(berth, tmp_path):
    env = berth.aws_env()
    sh("aws ecr create-repository --repository-name app", env)
    ecr = berth.ecr()
    push_tagged(ecr, "app", ["v1", "v2", "v3"])
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"rules": [{
        "rulePriority": 1, "description": "Keep only one image",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}, indent=2))
    out = json.loads(sh(f"aws ecr put-lifecycle-policy --repository-name app --lifecycle-policy-text file://{policy}", env).stdout)
    assert out["repositoryName"] == "app"
    sh("aws ecr start-lifecycle-policy-preview --repository-name app", env)
    preview = json.loads(sh("aws ecr get-lifecycle-policy-preview --repository-name app", env).stdout)
    assert preview["summary"]["expiringImageTotalCount"] == 2
    got = json.loads(sh("aws ecr get-lifecycle-policy --repository-name app", env).stdout)
    assert json.loads(got["lifecyclePolicyText"])["rules"][0]["description"] == "Keep only one image"
    sh("aws ecr delete-lifecycle-policy --repository-name app", env)
    failed = sh("aws ecr get-lifecycle-policy --repository-name app", env, check=False)
    assert failed.returncode != 0 and "LifecyclePolicyNotFoundException" in failed.stderr


def test_background_job_applies_policies(berth_factory):
    berth = berth_factory(extra_args=["--lifecycle-interval", "1"])
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    digests = push_tagged(ecr, "app", ["a", "b", "c"])
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps({"rules": [{
        "rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}))
    keep = newest_first(ecr, "app", list(digests.values()))[0]
    # The job runs every second; wait for its effect (bounded), not for a fixed time.
    deadline = time.monotonic() + 30
    while listed_digests(ecr, "app") != {keep}:
        assert time.monotonic() < deadline, f"the job did not act: {listed_digests(ecr, 'app')}"
        time.sleep(0.2)
    # It ran as the leased `lifecycle` job, which `berth admin jobs` reports.
    jobs = {j["job"]: j for j in map(json.loads, berth.admin("jobs").stdout.splitlines())}
    assert jobs["lifecycle"]["lastRunAt"] > 0 and jobs["lifecycle"]["lastError"] is None
    assert '"job":"lifecycle"' in berth.log_text()


# ---------------------------------------------------------------------------
# the archive storage class
# ---------------------------------------------------------------------------


def test_archived_images_are_listed_on_request_and_not_pulled(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    cold, manifest = seed_image(ecr, "app", "cold")
    hot, _ = seed_image(ecr, "app", "hot")
    out = ecr.update_image_storage_class(repositoryName="app", imageId={"imageTag": "cold"}, targetStorageClass="ARCHIVE")
    assert (out["imageId"], out["imageStatus"]) == ({"imageDigest": cold, "imageTag": "cold"}, "ARCHIVED")

    # Default listings show ACTIVE images only; the filter shows the rest.
    assert listed_digests(ecr, "app") == {hot}
    assert [d["imageDigest"] for d in ecr.describe_images(repositoryName="app")["imageDetails"]] == [hot]
    archived = ecr.describe_images(repositoryName="app", filter={"imageStatus": "ARCHIVED"})["imageDetails"]
    assert [(d["imageDigest"], d["imageStatus"]) for d in archived] == [(cold, "ARCHIVED")]
    assert "lastArchivedAt" in archived[0]
    both = ecr.list_images(repositoryName="app", filter={"imageStatus": "ANY"})["imageIds"]
    assert {i["imageDigest"] for i in both} == {cold, hot}

    # Not pullable, on the API or the registry.
    got = ecr.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "cold"}])
    assert got["images"] == [] and got["failures"][0]["failureCode"] == "ImageNotFound"
    assert "archived" in got["failures"][0]["failureReason"]
    r = requests.get(f"{berth.url}/v2/app/manifests/cold", auth=berth.registry_auth(),
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    # Restored, it pulls again.
    out = ecr.update_image_storage_class(repositoryName="app", imageId={"imageDigest": cold}, targetStorageClass="STANDARD")
    assert out["imageStatus"] == "ACTIVATING"
    detail = ecr.describe_images(repositoryName="app", imageIds=[{"imageDigest": cold}])["imageDetails"][0]
    assert detail["imageStatus"] == "ACTIVE" and "lastActivatedAt" in detail
    assert ecr.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "cold"}])["images"][0]["imageManifest"] == manifest.decode()

    # Pushing an archived image again restores it too.
    ecr.update_image_storage_class(repositoryName="app", imageId={"imageDigest": cold}, targetStorageClass="ARCHIVE")
    ecr.put_image(repositoryName="app", imageManifest=manifest.decode(), imageTag="cold")
    assert cold in listed_digests(ecr, "app")
    expect_error(lambda: ecr.update_image_storage_class(repositoryName="app", imageId={"imageTag": "nope"},
                                                        targetStorageClass="ARCHIVE"), "ImageNotFoundException", 400)


def test_transition_then_expire_after_90_days_in_the_archive(berth):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    digest, _ = seed_image(ecr, "app", "v1")
    policy = {"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed",
                                          "countUnit": "days", "countNumber": 1},
         "action": {"type": "transition", "targetStorageClass": "archive"}},
        {"rulePriority": 2, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
                                          "countUnit": "days", "countNumber": 30},
         "action": {"type": "expire"}},
    ]}
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps(policy))
    now = dt.datetime.now(dt.timezone.utc)
    assert lifecycle_run(berth, now + dt.timedelta(days=2)).endswith("0 images expired, 1 transitioned to archive")
    archived = ecr.describe_images(repositoryName="app", filter={"imageStatus": "ARCHIVED"})["imageDetails"]
    assert [d["imageDigest"] for d in archived] == [digest]
    # 30 days of the rule, but ECR keeps archived images 90 days.
    assert lifecycle_run(berth, now + dt.timedelta(days=60)).endswith("0 images expired, 0 transitioned to archive")
    assert lifecycle_run(berth, now + dt.timedelta(days=95)).endswith("1 images expired, 0 transitioned to archive")
    assert ecr.list_images(repositoryName="app", filter={"imageStatus": "ANY"})["imageIds"] == []
