"""Image scanning with boto3 and the aws CLI.

What this file covers:

* The registry scanning configuration: ECR's default (BASIC, no rules), Put/Get, and
  the validation of scan types, frequencies, rule counts and filters.
* BatchGetRepositoryScanningConfiguration: the frequency of the first registry rule that
  matches (and the filter that matched), else MANUAL; a repository's own scanOnPush
  beside it; REPOSITORY_NOT_FOUND failures.
* StartImageScan → `aws ecr wait image-scan-complete` → DescribeImageScanFindings,
  as in ECR's scanning tutorial, on a minimal real Debian 12 image against an OSV
  database with nothing for it: COMPLETE with no findings. The per-image daily quota,
  ScanNotFoundException for an image never scanned, ImageNotFoundException, and indexes
  (not scannable).
* Scan on push (repository setting or registry rule), and the scan status that
  DescribeImages reports.

Scans that find something, and images Berth cannot or will not scan, are in
test_vulnerability_scanning.py.
"""

from __future__ import annotations

import json
import subprocess

import botocore
import pytest

from ocihelpers import Registry, build_index, push_image, push_manifest
from test_ecr_api import error_of
from vulnimages import (
    DEBIAN_12_OS_RELEASE,
    Deb,
    affected,
    dpkg_status,
    import_vulndb,
    layer,
    osv,
    push_layers,
    put_layers_via_api,
    tree,
    write_all_zip,
)

SCAN_DONE = "The scan was completed successfully."


def minimal_debian_image():
    """The layers of a minimal real Debian 12 image: os-release and a dpkg status with one
    package. (Random bytes are no image layer: their scan would be FAILED.)"""
    status = dpkg_status([Deb("base-files", "12.4+deb12u5", section="admin", multi_arch="foreign", depends=None)])
    return [layer(tree({"etc/os-release": DEBIAN_12_OS_RELEASE, "var/lib/dpkg/status": status}))]


def load_unrelated_debian_data(berth, tmp_path) -> None:
    """Debian 12 data with an advisory for a package the minimal image does not have, so
    that its scan is COMPLETE (not UNSUPPORTED_IMAGE for lack of data) and clean."""
    record = osv("CVE-2024-0001", affected("Debian:12", "nginx", fixed="1.22.1-9+deb12u1"),
                 modified="2024-01-01T00:00:00Z", summary="nginx: an advisory for a package not installed")
    import_vulndb(berth, write_all_zip(tmp_path / "all.zip", [record]))


@pytest.fixture
def ecr(berth):
    return berth.ecr()


def rule(frequency: str, *filters: str) -> dict:
    return {"scanFrequency": frequency, "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in filters]}


def test_registry_scanning_configuration_defaults_and_round_trips(ecr):
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == {"scanType": "BASIC", "rules": []}
    rules = [rule("SCAN_ON_PUSH", "prod-*", "team/*")]
    out = ecr.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
    assert out["registryScanningConfiguration"] == {"scanType": "BASIC", "rules": rules}
    got = ecr.get_registry_scanning_configuration()
    assert got["registryId"] == ecr.describe_registry()["registryId"]
    assert got["scanningConfiguration"] == {"scanType": "BASIC", "rules": rules}
    enhanced = [rule("CONTINUOUS_SCAN", "*"), rule("SCAN_ON_PUSH", "dev")]
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=enhanced)
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == {"scanType": "ENHANCED", "rules": enhanced}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"scanType": "BASIC", "rules": [rule("CONTINUOUS_SCAN", "*")]}, "not supported for scan type BASIC"),
    ({"scanType": "ENHANCED", "rules": [rule("MANUAL", "*")]}, "not supported for scan type ENHANCED"),
    ({"scanType": "BASIC", "rules": [rule("SCAN_ON_PUSH", "a")] * 3}, "length less than or equal to 2"),
    ({"scanType": "BASIC", "rules": [rule("SCAN_ON_PUSH", "Prod")]}, "regular expression"),
    ({"scanType": "BASIC", "rules": [rule("SCAN_ON_PUSH", "a//b")]}, "regular expression"),
    ({"scanType": "BASIC", "rules": [{"scanFrequency": "SCAN_ON_PUSH",
                                      "repositoryFilters": [{"filter": "a", "filterType": "PREFIX_MATCH"}]}]}, "WILDCARD"),
])
def test_invalid_scanning_configurations_are_refused_and_change_nothing(ecr, kwargs, fragment):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_registry_scanning_configuration(**kwargs)
    code, message, status = error_of(e)
    assert (code, status) == ("InvalidParameterException", 400)
    assert fragment in message
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == {"scanType": "BASIC", "rules": []}


def test_repository_scanning_follows_registry_rules_then_the_repository(ecr):
    for name in ("prod-api", "dev-app", "plain"):
        ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": name == "dev-app"})
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[rule("SCAN_ON_PUSH", "prod-*")])
    out = ecr.batch_get_repository_scanning_configuration(repositoryNames=["prod-api", "dev-app", "plain", "gone"])
    by_name = {c["repositoryName"]: c for c in out["scanningConfigurations"]}
    assert by_name["prod-api"]["scanFrequency"] == "SCAN_ON_PUSH"
    assert by_name["prod-api"]["scanOnPush"] is False  # its own setting; the rule scans it
    assert by_name["prod-api"]["appliedScanFilters"] == [{"filter": "prod-*", "filterType": "WILDCARD"}]
    assert by_name["prod-api"]["repositoryArn"].endswith(":repository/prod-api")
    # No rule matches: MANUAL, with the repository's own (legacy) setting beside it.
    assert (by_name["dev-app"]["scanFrequency"], by_name["dev-app"]["scanOnPush"]) == ("MANUAL", True)
    assert (by_name["plain"]["scanFrequency"], by_name["plain"]["scanOnPush"]) == ("MANUAL", False)
    assert by_name["plain"]["appliedScanFilters"] == []
    assert out["failures"] == [
        {"repositoryName": "gone", "failureCode": "REPOSITORY_NOT_FOUND", "failureReason": "REPOSITORY_NOT_FOUND"}]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.batch_get_repository_scanning_configuration(repositoryNames=[f"r{i}" for i in range(26)])
    assert error_of(e)[0] == "InvalidParameterException"


def test_the_scanning_tutorial_with_the_aws_cli(berth, ecr, tmp_path):
    load_unrelated_debian_data(berth, tmp_path)
    ecr.create_repository(repositoryName="scanme")
    digest = put_layers_via_api(ecr, "scanme", minimal_debian_image(), tag="v1")
    env = berth.aws_env()

    def aws(*args: str) -> dict:
        proc = subprocess.run(["aws", "ecr", *args], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    started = aws("start-image-scan", "--repository-name", "scanme", "--image-id", "imageTag=v1")
    assert started["imageScanStatus"] == {"status": "IN_PROGRESS"}
    assert started["imageId"] == {"imageDigest": digest, "imageTag": "v1"}
    aws("wait", "image-scan-complete", "--repository-name", "scanme", "--image-id", "imageTag=v1")
    found = aws("describe-image-scan-findings", "--repository-name", "scanme", "--image-id", "imageTag=v1")
    assert found["imageScanStatus"] == {"status": "COMPLETE", "description": SCAN_DONE}
    assert found["imageScanFindings"]["findings"] == []
    assert found["imageScanFindings"]["findingSeverityCounts"] == {}
    assert found["imageScanFindings"]["imageScanCompletedAt"] >= 0
    detail = ecr.describe_images(repositoryName="scanme")["imageDetails"][0]
    assert detail["imageScanStatus"] == {"status": "COMPLETE", "description": SCAN_DONE}
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == {}


def test_scan_errors_quota_and_unscannable_images(berth, ecr):
    ecr.create_repository(repositoryName="errs")
    digest = put_layers_via_api(ecr, "errs", minimal_debian_image(), tag="v1")
    registry_id = ecr.describe_registry()["registryId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.describe_image_scan_findings(repositoryName="errs", imageId={"imageTag": "v1"})
    assert error_of(e) == (
        "ScanNotFoundException",
        f"Image scan does not exist for the image with '{{imageDigest:'{digest}', imageTag:'v1'}}' in the repository "
        f"with name 'errs' in the registry with id '{registry_id}'",
        400,
    )
    assert "imageScanStatus" not in ecr.describe_images(repositoryName="errs")["imageDetails"][0]
    ecr.start_image_scan(repositoryName="errs", imageId={"imageDigest": digest})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.start_image_scan(repositoryName="errs", imageId={"imageTag": "v1"})
    assert error_of(e)[:2] == ("LimitExceededException", "The scan quota per image has been exceeded. Wait and try again.")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.start_image_scan(repositoryName="errs", imageId={"imageTag": "nope"})
    assert error_of(e)[0] == "ImageNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.start_image_scan(repositoryName="nowhere", imageId={"imageTag": "v1"})
    assert error_of(e)[0] == "RepositoryNotFoundException"
    # A multi-platform index has no layers of its own to scan.
    reg = Registry(berth.url, auth=berth.registry_auth())
    child = push_image(reg, "errs")
    push_manifest(reg, "errs", "multi", build_index([child]))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.start_image_scan(repositoryName="errs", imageId={"imageTag": "multi"})
    assert error_of(e)[0] == "UnsupportedImageTypeException"


def test_images_are_scanned_on_push_where_configured(berth, ecr, tmp_path):
    load_unrelated_debian_data(berth, tmp_path)
    ecr.create_repository(repositoryName="manual")
    ecr.create_repository(repositoryName="onpush", imageScanningConfiguration={"scanOnPush": True})
    ecr.create_repository(repositoryName="prod-by-rule")
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[rule("SCAN_ON_PUSH", "prod-*")])
    reg = Registry(berth.url, auth=berth.registry_auth())
    for repo in ("manual", "onpush", "prod-by-rule"):
        push_layers(reg, repo, minimal_debian_image(), tag="v1")  # docker's path: the registry API
    scanned = {
        repo: "imageScanStatus" in ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        for repo in ("manual", "onpush", "prod-by-rule")
    }
    assert scanned == {"manual": False, "onpush": True, "prod-by-rule": True}
    # The push records the scan IN_PROGRESS; the scan job completes it (as the
    # image-scan-complete waiter expects on ECR).
    ecr.get_waiter("image_scan_complete").wait(
        repositoryName="onpush", imageId={"imageTag": "v1"}, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    found = ecr.describe_image_scan_findings(repositoryName="onpush", imageId={"imageTag": "v1"})
    assert found["imageScanStatus"] == {"status": "COMPLETE", "description": SCAN_DONE}
    assert found["imageScanFindings"]["findings"] == []
    # A scan on push uses the image's daily quota, as on ECR.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.start_image_scan(repositoryName="onpush", imageId={"imageTag": "v1"})
    assert error_of(e)[0] == "LimitExceededException"
