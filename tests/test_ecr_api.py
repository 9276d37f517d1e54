"""ECR's control-plane API through boto3: every implemented operation, its documented
errors, pagination edges and validation limits, and the shared rules with the registry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import boto3
import botocore
import pytest
import requests
from botocore.config import Config

from ocihelpers import OCI_CONFIG, OCI_LAYER, Registry, config_bytes, descriptor, image_manifest_dict, json_bytes, upload_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MiB = 1024 * 1024


@pytest.fixture
def ecr(berth):
    return berth.ecr()


def error_of(excinfo) -> tuple[str, str, int]:
    e = excinfo.value.response
    return e["Error"]["Code"], e["Error"]["Message"], e["ResponseMetadata"]["HTTPStatusCode"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image_via_api(ecr, repo: str, tag: str | None = None, layers: int = 1):
    """Upload config and layers through the API path, then PutImage. Returns (digest, manifest)."""
    blobs = [config_bytes()] + [os.urandom(1000 + i) for i in range(layers)]
    for b in blobs:
        up = ecr.initiate_layer_upload(repositoryName=repo)
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=up["uploadId"], partFirstByte=0, partLastByte=len(b) - 1, layerPartBlob=b
        )
        ecr.complete_layer_upload(repositoryName=repo, uploadId=up["uploadId"], layerDigests=[sha256(b)])
    manifest = json_bytes(image_manifest_dict(descriptor(OCI_CONFIG, blobs[0]), [descriptor(OCI_LAYER, b) for b in blobs[1:]]))
    kw = {"imageTag": tag} if tag else {}
    out = ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), **kw)
    return out["image"]["imageId"]["imageDigest"], manifest


# ---- authentication -------------------------------------------------------------------


def test_unsigned_and_wrongly_signed_requests_are_refused(berth):
    r = requests.post(berth.url, headers={"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
                                          "Content-Type": "application/x-amz-json-1.1"}, data="{}", timeout=10)
    assert r.status_code == 400
    assert r.json()["__type"] == "MissingAuthenticationTokenException"
    key, _ = berth.credentials()
    bad = boto3.client("ecr", endpoint_url=berth.url, region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key="wrong" * 8, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.describe_repositories()
    assert error_of(e)[0] == "InvalidSignatureException"
    unknown = boto3.client("ecr", endpoint_url=berth.url, region_name="us-east-1",
                           aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unknown.describe_repositories()
    code, message, status = error_of(e)
    assert (code, status) == ("UnrecognizedClientException", 400)
    assert message == "The security token included in the request is invalid."


def test_unknown_operation_and_bad_json(berth):
    """Correctly signed requests with an unknown target, or a body that is not JSON."""

    def signed_client(mutate):
        # A client of its own: handlers registered on a shared one would add up.
        key, secret = berth.credentials()
        c = boto3.client("ecr", endpoint_url=berth.url, region_name=berth.region,
                         aws_access_key_id=key, aws_secret_access_key=secret)
        c.meta.events.register("before-sign.ecr.DescribeRegistry", lambda request, **_: mutate(request))
        return c

    def bogus_target(request):
        # botocore's header map appends on assignment: replace the value.
        del request.headers["X-Amz-Target"]
        request.headers["X-Amz-Target"] = "AmazonEC2ContainerRegistry_V20150921.Bogus"

    def bad_body(request):
        request.data = b"not json"

    with pytest.raises(botocore.exceptions.ClientError) as e:
        signed_client(bogus_target).describe_registry()
    assert error_of(e)[:1] == ("UnknownOperationException",)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        signed_client(bad_body).describe_registry()
    assert error_of(e)[0] == "SerializationException"


# ---- repositories ---------------------------------------------------------------------


def test_create_repository_defaults_and_uri(berth, ecr):
    repo = ecr.create_repository(repositoryName="team/my-app")["repository"]
    assert repo["repositoryName"] == "team/my-app"
    assert repo["registryId"] == berth.account_id
    assert repo["repositoryArn"] == f"arn:aws:ecr:us-east-1:{berth.account_id}:repository/team/my-app"
    assert repo["repositoryUri"] == f"{berth.registry_host()}/team/my-app"
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": False}
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert "imageTagMutabilityExclusionFilters" not in repo
    with pytest.raises(ecr.exceptions.RepositoryAlreadyExistsException) as e:
        ecr.create_repository(repositoryName="team/my-app")
    assert error_of(e)[1] == (
        f"The repository with name 'team/my-app' already exists in the registry with id '{berth.account_id}'"
    )


def test_create_repository_settings_and_tags(ecr):
    repo = ecr.create_repository(
        repositoryName="configured",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS"},
        tags=[{"Key": "team", "Value": "a"}],
    )["repository"]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    # The account's AWS-managed ECR key, by key id (as ECR names it), the same each time.
    key = repo["encryptionConfiguration"]["kmsKey"]
    assert re.fullmatch(r"arn:aws:kms:us-east-1:000000000000:key/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", key), key
    again = ecr.create_repository(repositoryName="configured-2", encryptionConfiguration={"encryptionType": "KMS"})
    assert again["repository"]["encryptionConfiguration"]["kmsKey"] == key
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [{"Key": "team", "Value": "a"}]


def test_enum_messages_list_values_in_ecrs_order(ecr):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.create_repository(repositoryName="bad-mutability", imageTagMutability="SOMETIMES")
    assert e.value.response["Error"]["Message"].endswith(
        "'Member must satisfy enum value set: [IMMUTABLE, MUTABLE, MUTABLE_WITH_EXCLUSION, IMMUTABLE_WITH_EXCLUSION]'")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.create_repository(repositoryName="bad-encryption", encryptionConfiguration={"encryptionType": "DES"})
    assert e.value.response["Error"]["Message"].endswith(
        "'Member must satisfy enum value set: [AES256, KMS_DSSE, KMS]'")


@pytest.mark.parametrize(
    "name, constraint",
    [
        ("Upper", "must satisfy regular expression"),
        ("a" * 257, "must have length less than or equal to 256"),
        ("app/", "must satisfy regular expression"),
        ("app._x", "must satisfy regular expression"),
    ],
)
def test_create_repository_validation(ecr, name, constraint):
    with pytest.raises(ecr.exceptions.InvalidParameterException) as e:
        ecr.create_repository(repositoryName=name)
    code, message, status = error_of(e)
    assert status == 400
    assert message.startswith("Invalid parameter at 'repositoryName' failed to satisfy constraint: '")
    assert constraint in message


def test_create_repository_exclusion_filter_rules(ecr):
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName="x1", imageTagMutability="IMMUTABLE_WITH_EXCLUSION")
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName="x2", imageTagMutability="MUTABLE",
                              imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "a"}])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName="x3", imageTagMutability="SOMETIMES")


def test_describe_repositories_by_name_and_paginated(ecr):
    names = [f"repo-{i:02d}" for i in range(7)]
    for n in names:
        ecr.create_repository(repositoryName=n)
    got = ecr.describe_repositories(repositoryNames=["repo-03", "repo-01"])["repositories"]
    assert [r["repositoryName"] for r in got] == ["repo-03", "repo-01"]
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as e:
        ecr.describe_repositories(repositoryNames=["repo-01", "nope"])
    assert "'nope'" in error_of(e)[1]
    page = ecr.describe_repositories(maxResults=3)
    assert [r["repositoryName"] for r in page["repositories"]] == names[:3]
    seen = []
    for p in ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2}):
        seen += [r["repositoryName"] for r in p["repositories"]]
    assert seen == names
    last = ecr.describe_repositories(maxResults=7)
    assert "nextToken" not in last
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(maxResults=1001)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(repositoryNames=["repo-01"], maxResults=2)


def test_delete_repository_requires_force_when_not_empty(berth, ecr):
    ecr.create_repository(repositoryName="full")
    push_image_via_api(ecr, "full", "v1")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName="full")
    deleted = ecr.delete_repository(repositoryName="full", force=True)["repository"]
    assert deleted["repositoryName"] == "full"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_images(repositoryName="full")
    # The name can be used again, and the new repository is empty.
    ecr.create_repository(repositoryName="full")
    assert ecr.list_images(repositoryName="full")["imageIds"] == []


def test_tag_mutability_and_scanning_configuration(ecr):
    ecr.create_repository(repositoryName="mut")
    out = ecr.put_image_tag_mutability(repositoryName="mut", imageTagMutability="IMMUTABLE")
    assert out["imageTagMutability"] == "IMMUTABLE"
    assert ecr.describe_repositories(repositoryNames=["mut"])["repositories"][0]["imageTagMutability"] == "IMMUTABLE"
    out = ecr.put_image_scanning_configuration(repositoryName="mut", imageScanningConfiguration={"scanOnPush": True})
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    repo = ecr.describe_repositories(repositoryNames=["mut"])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}


def test_resource_tags(ecr):
    arn = ecr.create_repository(repositoryName="tagged")["repository"]["repositoryArn"]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "9"}])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "a", "Value": "9"}, {"Key": "b", "Value": "2"}]
    ecr.untag_resource(resourceArn=arn, tagKeys=["a", "absent"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ecr.exceptions.TooManyTagsException):
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    # One key twice in one request is refused, on create and on tag; nothing changes.
    dup = [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.tag_resource(resourceArn=arn, tags=dup)
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.create_repository(repositoryName="dup-tags", tags=dup)
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=["dup-tags"])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.list_tags_for_resource(resourceArn=arn.replace("tagged", "untagged"))


def test_describe_registry(berth, ecr):
    out = ecr.describe_registry()
    assert out["registryId"] == berth.account_id
    assert out["replicationConfiguration"] == {"rules": []}


# ---- login ------------------------------------------------------------------------------


def test_get_authorization_token(berth, ecr):
    data = ecr.get_authorization_token()["authorizationData"]
    assert len(data) == 1
    token = base64.b64decode(data[0]["authorizationToken"]).decode()
    user, password = token.split(":")  # exactly one colon, as the CLI requires
    assert user == "AWS" and password
    assert data[0]["proxyEndpoint"] == f"http://{berth.registry_host()}"
    hours = (data[0]["expiresAt"].timestamp() - __import__("time").time()) / 3600
    assert 11.9 < hours <= 12.0
    r = requests.get(f"{berth.url}/v2/", auth=(user, password), timeout=10)
    assert r.status_code == 200
    two = ecr.get_authorization_token(registryIds=[berth.account_id, "111122223333"])["authorizationData"]
    assert [d["proxyEndpoint"] for d in two] == [
        f"http://{berth.registry_host()}",
        f"http://{berth.registry_host(account='111122223333')}",
    ]


def test_registry_challenge_and_token_scope(berth, ecr):
    r = requests.get(f"{berth.url}/v2/", timeout=10)
    assert r.status_code == 401
    # The realm names the scheme Berth is served with (plain HTTP here).
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="http://')
    assert 'service="ecr.amazonaws.com"' in r.headers["WWW-Authenticate"]
    assert r.text == "Not Authorized\n"
    assert requests.get(f"{berth.url}/v2/", auth=("AWS", "forged.token"), timeout=10).status_code == 401
    # A token of another region does not open this region's registry.
    other = berth.registry_auth(region="eu-west-1")
    assert requests.get(f"{berth.url}/v2/", auth=other, timeout=10).status_code == 401
    host = berth.registry_host(region="eu-west-1")
    assert requests.get(f"{berth.url}/v2/", auth=other, headers={"Host": host}, timeout=10).status_code == 200


def test_another_accounts_registry_is_denied(berth, ecr):
    ecr.create_repository(repositoryName="private")
    other = berth.registry_auth(account="111122223333")
    r = requests.get(f"{berth.url}/v2/private/tags/list", auth=other, timeout=10)
    assert r.status_code == 403
    err = r.json()["errors"][0]
    assert err["code"] == "DENIED"
    assert err["message"] == (
        "User: arn:aws:iam::111122223333:root is not authorized to perform: ecr:ListImages on resource: "
        f"arn:aws:ecr:us-east-1:{berth.account_id}:repository/private because no resource-based policy allows the ecr:ListImages action"
    )


# ---- layers and images --------------------------------------------------------------------


def test_api_upload_path_and_registry_see_the_same_blob(berth, ecr):
    ecr.create_repository(repositoryName="layers")
    data = os.urandom(6 * MiB + 123)
    up = ecr.initiate_layer_upload(repositoryName="layers")
    assert up["partSize"] == 10485760
    first = ecr.upload_layer_part(repositoryName="layers", uploadId=up["uploadId"], partFirstByte=0,
                                  partLastByte=5 * MiB - 1, layerPartBlob=data[: 5 * MiB])
    assert first["lastByteReceived"] == 5 * MiB - 1
    # Out of order: InvalidLayerPartException with the last valid byte.
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as e:
        ecr.upload_layer_part(repositoryName="layers", uploadId=up["uploadId"], partFirstByte=10,
                              partLastByte=19, layerPartBlob=data[10:20])
    assert e.value.response["lastValidByteReceived"] == 5 * MiB - 1
    ecr.upload_layer_part(repositoryName="layers", uploadId=up["uploadId"], partFirstByte=5 * MiB,
                          partLastByte=len(data) - 1, layerPartBlob=data[5 * MiB:])
    with pytest.raises(ecr.exceptions.InvalidLayerException):
        ecr.complete_layer_upload(repositoryName="layers", uploadId=up["uploadId"], layerDigests=[sha256(b"other")])
    up = ecr.initiate_layer_upload(repositoryName="layers")
    ecr.upload_layer_part(repositoryName="layers", uploadId=up["uploadId"], partFirstByte=0,
                          partLastByte=len(data) - 1, layerPartBlob=data)
    done = ecr.complete_layer_upload(repositoryName="layers", uploadId=up["uploadId"], layerDigests=[sha256(data)])
    assert done["layerDigest"] == sha256(data)
    check = ecr.batch_check_layer_availability(repositoryName="layers", layerDigests=[sha256(data), sha256(b"nope"), "bad"])
    assert check["layers"][0]["layerAvailability"] == "AVAILABLE" and check["layers"][0]["layerSize"] == len(data)
    assert sorted(f["failureCode"] for f in check["failures"]) == ["InvalidLayerDigest", "MissingLayerDigest"]
    # GetDownloadUrlForLayer and the registry serve the same bytes.
    url = ecr.get_download_url_for_layer(repositoryName="layers", layerDigest=sha256(data))["downloadUrl"]
    assert requests.get(url, timeout=60).content == data
    reg = Registry(berth.url, auth=berth.registry_auth())
    assert reg.get(f"/v2/layers/blobs/{sha256(data)}").content == data
    # A tampered URL grants nothing: Berth's own (the data directory), or object
    # storage's presigned one (S3 blob storage), which S3 refuses with 403.
    if berth.blobs_url:
        assert url.startswith(berth.blobs_url.partition("endpoint=")[2].partition("&")[0] + "/")
        tampered = url.replace("X-Amz-Expires=", "X-Amz-Expires=9")
        assert requests.get(tampered, timeout=10).status_code == 403
    else:
        tampered = url.replace("X-Berth-Expires=", "X-Berth-Expires=9")
        assert requests.get(tampered, timeout=10).status_code == 401
    with pytest.raises(ecr.exceptions.LayerAlreadyExistsException):
        up = ecr.initiate_layer_upload(repositoryName="layers")
        ecr.upload_layer_part(repositoryName="layers", uploadId=up["uploadId"], partFirstByte=0,
                              partLastByte=len(data) - 1, layerPartBlob=data)
        ecr.complete_layer_upload(repositoryName="layers", uploadId=up["uploadId"], layerDigests=[sha256(data)])
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.get_download_url_for_layer(repositoryName="layers", layerDigest=sha256(b"nope"))


def test_upload_part_rules(ecr):
    ecr.create_repository(repositoryName="parts")
    up = ecr.initiate_layer_upload(repositoryName="parts")
    with pytest.raises(ecr.exceptions.EmptyUploadException):
        ecr.complete_layer_upload(repositoryName="parts", uploadId=up["uploadId"], layerDigests=[sha256(b"")])
    small = [os.urandom(1000), os.urandom(10)]
    ecr.upload_layer_part(repositoryName="parts", uploadId=up["uploadId"], partFirstByte=0, partLastByte=999, layerPartBlob=small[0])
    ecr.upload_layer_part(repositoryName="parts", uploadId=up["uploadId"], partFirstByte=1000, partLastByte=1009, layerPartBlob=small[1])
    with pytest.raises(ecr.exceptions.LayerPartTooSmallException):
        ecr.complete_layer_upload(repositoryName="parts", uploadId=up["uploadId"], layerDigests=[sha256(b"".join(small))])
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(repositoryName="parts", uploadId="00000000-0000-4000-8000-000000000000",
                              partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
    with pytest.raises(ecr.exceptions.InvalidLayerPartException):
        ecr.upload_layer_part(repositoryName="parts", uploadId=up["uploadId"], partFirstByte=1010,
                              partLastByte=2000, layerPartBlob=b"short")


def test_put_image_rules(berth, ecr):
    ecr.create_repository(repositoryName="imgs")
    digest, manifest = push_image_via_api(ecr, "imgs", "v1")
    assert digest == sha256(manifest)
    # Same tag, same image: ImageAlreadyExistsException even on a mutable repository.
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName="imgs", imageManifest=manifest.decode(), imageTag="v1")
    # Another tag on the same image is fine.
    ecr.put_image(repositoryName="imgs", imageManifest=manifest.decode(), imageTag="v1-alias")
    with pytest.raises(ecr.exceptions.ImageDigestDoesNotMatchException):
        ecr.put_image(repositoryName="imgs", imageManifest=manifest.decode(), imageTag="x", imageDigest=sha256(b"x"))
    missing = json_bytes(image_manifest_dict(descriptor(OCI_CONFIG, b"{}"), [descriptor(OCI_LAYER, b"never uploaded")]))
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.put_image(repositoryName="imgs", imageManifest=missing.decode(), imageTag="broken")
    with pytest.raises(ecr.exceptions.InvalidParameterException) as e:
        ecr.put_image(repositoryName="imgs", imageManifest="not json", imageTag="bad")
    assert error_of(e)[1] == "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName="imgs", imageManifest=manifest.decode(), imageTag="a+b")
    # A PutImage is pullable from the registry, byte for byte.
    reg = Registry(berth.url, auth=berth.registry_auth())
    r = reg.get("/v2/imgs/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.content == manifest and r.headers["Docker-Content-Digest"] == digest


def test_immutable_tags_on_both_paths(berth, ecr):
    ecr.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    push_image_via_api(ecr, "frozen", "v1")
    _, other = push_image_via_api(ecr, "frozen")
    with pytest.raises(ecr.exceptions.ImageTagAlreadyExistsException) as e:
        ecr.put_image(repositoryName="frozen", imageManifest=other.decode(), imageTag="v1")
    assert error_of(e)[1] == (
        "The image tag 'v1' already exists in the 'frozen' repository and cannot be overwritten because the repository is immutable."
    )
    reg = Registry(berth.url, auth=berth.registry_auth())
    r = reg.put("/v2/frozen/manifests/v1", data=other, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "TAG_INVALID"
    assert "cannot be overwritten because the repository is immutable" in r.json()["errors"][0]["message"]


def test_batch_get_list_describe_delete(berth, ecr):
    ecr.create_repository(repositoryName="many")
    d1, m1 = push_image_via_api(ecr, "many", "one", layers=2)
    d2, _ = push_image_via_api(ecr, "many")
    ecr.put_image(repositoryName="many", imageManifest=m1.decode(), imageTag="uno")
    got = ecr.batch_get_image(repositoryName="many", imageIds=[{"imageTag": "one"}, {"imageDigest": d2}, {"imageTag": "nope"}, {}])
    assert {i["imageId"].get("imageTag") for i in got["images"]} == {"one", None}
    assert got["images"][0]["imageManifest"].encode() == m1 or got["images"][1]["imageManifest"].encode() == m1
    assert sorted(f["failureCode"] for f in got["failures"]) == ["ImageNotFound", "MissingDigestAndTag"]
    ids = ecr.list_images(repositoryName="many")["imageIds"]
    assert sorted((i["imageDigest"], i.get("imageTag")) for i in ids) == sorted([(d1, "one"), (d1, "uno"), (d2, None)])
    assert ecr.list_images(repositoryName="many", filter={"tagStatus": "UNTAGGED"})["imageIds"] == [{"imageDigest": d2}]
    pages = list(ecr.get_paginator("list_images").paginate(repositoryName="many", PaginationConfig={"PageSize": 1}))
    assert sum(len(p["imageIds"]) for p in pages) == 3
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName="many")["imageDetails"]}
    assert set(details) == {d1, d2}
    assert details[d1]["imageTags"] == ["one", "uno"]
    assert "imageTags" not in details[d2]
    assert details[d1]["imageSizeInBytes"] == 1000 + 1001
    assert details[d1]["imageManifestMediaType"] == OCI_MANIFEST
    assert details[d1]["artifactMediaType"] == OCI_CONFIG
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName="many", imageIds=[{"imageTag": "nope"}])
    deleted = ecr.batch_delete_image(repositoryName="many", imageIds=[{"imageTag": "uno"}, {"imageDigest": d2}, {"imageTag": "gone"}])
    assert sorted((i["imageDigest"], i.get("imageTag")) for i in deleted["imageIds"]) == sorted([(d1, "uno"), (d2, None)])
    assert [f["failureCode"] for f in deleted["failures"]] == ["ImageNotFound"]
    assert [i.get("imageTag") for i in ecr.list_images(repositoryName="many")["imageIds"]] == ["one"]


def test_batch_get_image_converts_by_tag_only(berth, ecr):
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    ecr.create_repository(repositoryName="conv")
    d, m = push_image_via_api(ecr, "conv", "v1")
    got = ecr.batch_get_image(
        repositoryName="conv", imageIds=[{"imageTag": "v1"}, {"imageDigest": d}], acceptedMediaTypes=[docker]
    )
    assert len(got["images"]) == 1
    img = got["images"][0]
    assert img["imageManifestMediaType"] == docker
    body = img["imageManifest"].encode()
    assert img["imageId"] == {"imageDigest": "sha256:" + hashlib.sha256(body).hexdigest(), "imageTag": "v1"}
    converted, stored = json.loads(body), json.loads(m)
    assert converted["mediaType"] == docker
    assert converted["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert converted["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert converted["layers"][0]["digest"] == stored["layers"][0]["digest"]
    # By digest there is no conversion.
    assert [(f["imageId"], f["failureCode"]) for f in got["failures"]] == [({"imageDigest": d}, "UnsupportedImageType")]
    # An accepted type is served byte for byte.
    same = ecr.batch_get_image(repositoryName="conv", imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[OCI_MANIFEST])
    assert same["images"][0]["imageManifest"].encode() == m


def test_pull_time_is_recorded(berth, ecr):
    ecr.create_repository(repositoryName="pulled")
    d, _ = push_image_via_api(ecr, "pulled", "v1")
    assert "lastRecordedPullTime" not in ecr.describe_images(repositoryName="pulled")["imageDetails"][0]
    reg = Registry(berth.url, auth=berth.registry_auth())
    assert reg.get("/v2/pulled/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    # Recorded off the request path: poll briefly (bounded) for the write to land.
    import time
    deadline = time.monotonic() + 10
    while True:
        detail = ecr.describe_images(repositoryName="pulled")["imageDetails"][0]
        if "lastRecordedPullTime" in detail or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "lastRecordedPullTime" in detail


def test_list_image_referrers(berth, ecr):
    ecr.create_repository(repositoryName="refs")
    subject, _ = push_image_via_api(ecr, "refs", "v1")
    reg = Registry(berth.url, auth=berth.registry_auth())
    upload_blob(reg, "refs", b"{}")
    art = json_bytes({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    })
    assert reg.put(f"/v2/refs/manifests/{sha256(art)}", data=art, headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    out = ecr.list_image_referrers(repositoryName="refs", subjectId={"imageDigest": subject})["referrers"]
    assert [(r["digest"], r["artifactType"], r["artifactStatus"]) for r in out] == [(sha256(art), "application/vnd.example.sbom", "ACTIVE")]
    none = ecr.list_image_referrers(repositoryName="refs", subjectId={"imageDigest": subject},
                                    filter={"artifactTypes": ["application/other"]})["referrers"]
    assert none == []


def test_missing_repository_errors(berth, ecr):
    for call in (
        lambda: ecr.describe_images(repositoryName="absent"),
        lambda: ecr.list_images(repositoryName="absent"),
        lambda: ecr.initiate_layer_upload(repositoryName="absent"),
        lambda: ecr.batch_get_image(repositoryName="absent", imageIds=[{"imageTag": "x"}]),
        lambda: ecr.delete_repository(repositoryName="absent"),
    ):
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as e:
            call()
        assert error_of(e)[1] == f"The repository with name 'absent' does not exist in the registry with id '{berth.account_id}'"
