"""Account settings and pull-time update exclusions, with boto3 and the registry.

What this file covers:

* GetAccountSetting defaults (BLOB_MOUNTING DISABLED, REGISTRY_POLICY_SCOPE V2,
  BASIC_SCAN_TYPE_VERSION AWS_NATIVE), PutAccountSetting, and the errors for an unknown
  name (InvalidParameterException) or value (ValidationException); settings are per
  registry (region).
* Register/Deregister/ListPullTimeUpdateExclusions and their errors.
* Pulls by an excluded principal leave `lastRecordedPullTime` alone; other principals'
  pulls still record it.
"""

from __future__ import annotations

import time

import requests

from test_iam import READ_ONLY, ecr_client, expect_error, new_user, registry_password, seed_image, user_arn

MANIFEST = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def test_account_settings_defaults_and_updates(berth):
    ecr = berth.ecr()
    defaults = {n: ecr.get_account_setting(name=n)["value"]
                for n in ["BLOB_MOUNTING", "REGISTRY_POLICY_SCOPE", "BASIC_SCAN_TYPE_VERSION"]}
    assert defaults == {"BLOB_MOUNTING": "DISABLED", "REGISTRY_POLICY_SCOPE": "V2", "BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE"}
    put = ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    assert (put["name"], put["value"]) == ("BLOB_MOUNTING", "ENABLED")
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"
    # Per registry: another region keeps the default.
    assert berth.ecr("eu-west-1").get_account_setting(name="BLOB_MOUNTING")["value"] == "DISABLED"
    expect_error(lambda: ecr.get_account_setting(name="NOT_A_SETTING"), "InvalidParameterException", 400)
    message = expect_error(lambda: ecr.put_account_setting(name="BLOB_MOUNTING", value="SOMETIMES"), "ValidationException", 400)
    assert "ENABLED" in message


def test_pull_time_exclusions_crud(berth):
    ecr = berth.ecr()
    arn = user_arn("robot")
    created = ecr.register_pull_time_update_exclusion(principalArn=arn)
    assert created["principalArn"] == arn and "createdAt" in created
    expect_error(lambda: ecr.register_pull_time_update_exclusion(principalArn=arn), "ExclusionAlreadyExistsException", 400)
    ecr.register_pull_time_update_exclusion(principalArn="arn:aws:iam::000000000000:role/scanner")
    listed = ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
    assert listed == ["arn:aws:iam::000000000000:role/scanner", arn]
    page = ecr.list_pull_time_update_exclusions(maxResults=1)
    assert page["pullTimeUpdateExclusions"] == [listed[0]] and "nextToken" in page
    assert ecr.deregister_pull_time_update_exclusion(principalArn=arn)["principalArn"] == arn
    expect_error(lambda: ecr.deregister_pull_time_update_exclusion(principalArn=arn), "ExclusionNotFoundException", 400)
    expect_error(lambda: ecr.register_pull_time_update_exclusion(principalArn="arn:aws:s3:::bucket"), "InvalidParameterException", 400)


def pulled_at(ecr, repo: str, tag: str):
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"][0]
    return detail.get("lastRecordedPullTime")


def wait_for_pull_time(ecr, repo: str, tag: str):
    """Pull times are written off the request path: wait (bounded) for one to appear."""
    deadline = time.monotonic() + 20
    while (at := pulled_at(ecr, repo, tag)) is None:
        assert time.monotonic() < deadline, f"no pull time recorded for {repo}:{tag}"
        time.sleep(0.1)
    return at


def test_excluded_principals_do_not_update_pull_time(berth):
    root = berth.ecr()
    root.create_repository(repositoryName="app")
    seed_image(root, "app", "scanned")
    seed_image(root, "app", "used")
    robot = ecr_client(berth, *new_user(berth, "robot", managed_arns=[READ_ONLY]))
    root.register_pull_time_update_exclusion(principalArn=user_arn("robot"))
    robot_auth = ("AWS", registry_password(robot))

    r = requests.get(f"{berth.url}/v2/app/manifests/scanned", auth=robot_auth, headers=MANIFEST, timeout=30)
    assert r.status_code == 200
    # Another principal's pull of another image is recorded; the robot's pull, made
    # earlier, is not.
    r = requests.get(f"{berth.url}/v2/app/manifests/used", auth=berth.registry_auth(), headers=MANIFEST, timeout=30)
    assert r.status_code == 200
    wait_for_pull_time(root, "app", "used")
    assert pulled_at(root, "app", "scanned") is None

    # The robot's pull did not use up the day's recording: the next pull by someone
    # else records at once.
    r = requests.get(f"{berth.url}/v2/app/manifests/scanned", auth=berth.registry_auth(), headers=MANIFEST, timeout=30)
    assert r.status_code == 200
    wait_for_pull_time(root, "app", "scanned")
