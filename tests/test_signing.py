"""Managed signing: AWS Signer's signing profiles (REST-JSON, boto3's `signer` client),
ECR's signing configuration and DescribeImageSigningStatus (boto3), and the signature a
push gets: a Notary Project JWS envelope attached as a referrer, verified here with an
independent implementation (Python `cryptography`) against the CA `berth admin
signing-ca` exports.
"""

from __future__ import annotations

import base64
import hashlib
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ocihelpers import push_image
from test_jobs import wait_until
from test_replication import configure, dest, registry

PLATFORM = "Notation-OCI-SHA384-ECDSA"
SIGNATURE = "application/vnd.cncf.notary.signature"


def signer(berth, creds=None):
    key, secret = creds or berth.credentials()
    return boto3.client("signer", endpoint_url=berth.url, region_name=berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def iam(berth):
    key, secret = berth.credentials()
    return boto3.client("iam", endpoint_url=berth.url, region_name=berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def code(e) -> str:
    return e.value.response["Error"]["Code"]


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def signing_statuses(berth, repo: str, digest: str) -> list[dict]:
    return berth.ecr().describe_image_signing_status(
        repositoryName=repo, imageId={"imageDigest": digest})["signingStatuses"]


def signed(berth, repo: str, digest: str) -> list[dict]:
    return wait_until("the image's signing to end", lambda: (
        s := signing_statuses(berth, repo, digest)) and all(x["status"] != "IN_PROGRESS" for x in s) and s)


def verify(envelope: bytes, ca: x509.Certificate, manifest: bytes) -> None:
    """Verify a Notary Project JWS signature of `manifest` as a verifier would: the
    chain to `ca`, the ES384 signature, and the signed descriptor against the bytes."""
    env = json.loads(envelope)
    protected = json.loads(b64url(env["protected"]))
    assert protected["alg"] == "ES384" and protected["io.cncf.notary.signingScheme"] == "notary.x509"
    assert protected["cty"] == "application/vnd.cncf.notary.payload.v1+json"
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in env["header"]["x5c"]]
    leaf = chain[0]
    assert chain[-1] == ca, "the chain ends at the exported CA"
    leaf.verify_directly_issued_by(ca)
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in usage
    raw = b64url(env["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    leaf.public_key().verify(der, f"{env['protected']}.{env['payload']}".encode(), ec.ECDSA(hashes.SHA384()))
    target = json.loads(b64url(env["payload"]))["targetArtifact"]
    if target["digest"] != "sha256:" + hashlib.sha256(manifest).hexdigest() or target["size"] != len(manifest):
        raise InvalidSignature("the signed descriptor is not this manifest's")


@pytest.fixture
def profile(berth):
    out = signer(berth).put_signing_profile(
        profileName="release_key", platformId=PLATFORM, signatureValidityPeriod={"value": 12, "type": "MONTHS"})
    return out["arn"]


def test_signing_profiles_are_aws_signers(berth, profile):
    s = signer(berth)
    assert profile == f"arn:aws:signer:{berth.region}:{berth.account_id}:/signing-profiles/release_key"
    got = s.get_signing_profile(profileName="release_key")
    assert got["status"] == "Active" and got["platformId"] == PLATFORM and got["arn"] == profile
    assert got["signatureValidityPeriod"] == {"value": 12, "type": "MONTHS"}
    assert got["profileVersionArn"] == f"{profile}/{got['profileVersion']}"
    with pytest.raises(ClientError) as e:
        s.put_signing_profile(profileName="release_key", platformId=PLATFORM)
    assert code(e) == "ConflictException"
    with pytest.raises(ClientError) as e:
        s.put_signing_profile(profileName="other", platformId="AWSLambda-SHA384-ECDSA")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        s.get_signing_profile(profileName="missing")
    assert code(e) == "ResourceNotFoundException"
    s.put_signing_profile(profileName="second", platformId=PLATFORM)
    assert [p["profileName"] for p in s.list_signing_profiles()["profiles"]] == ["release_key", "second"]
    s.cancel_signing_profile(profileName="second")
    assert s.get_signing_profile(profileName="second")["status"] == "Canceled"
    assert [p["profileName"] for p in s.list_signing_profiles()["profiles"]] == ["release_key"]
    assert len(s.list_signing_profiles(includeCanceled=True)["profiles"]) == 2

    # IAM decides: a user without signer actions is refused.
    i = iam(berth)
    i.create_user(UserName="nosign")
    key = i.create_access_key(UserName="nosign")["AccessKey"]
    denied = signer(berth, (key["AccessKeyId"], key["SecretAccessKey"]))
    with pytest.raises(ClientError) as e:
        denied.get_signing_profile(profileName="release_key")
    assert code(e) == "AccessDeniedException"


def test_the_signing_configuration_is_ecrs(berth, profile):
    ecr = berth.ecr()
    with pytest.raises(ClientError) as e:
        ecr.get_signing_configuration()
    assert code(e) == "SigningConfigurationNotFoundException"
    rules = [{"signingProfileArn": profile,
              "repositoryFilters": [{"filter": "signed/*", "filterType": "WILDCARD_MATCH"}]}]
    assert ecr.put_signing_configuration(signingConfiguration={"rules": rules})["signingConfiguration"]["rules"] == rules
    got = ecr.get_signing_configuration()
    assert got["registryId"] == berth.account_id and got["signingConfiguration"]["rules"] == rules
    for bad in (
        [{"signingProfileArn": "arn:aws:ecr:us-east-1:000000000000:repository/x"}],
        [{"signingProfileArn": profile, "repositoryFilters": [{"filter": "UPPER", "filterType": "WILDCARD_MATCH"}]}],
        [{"signingProfileArn": profile}] * 11,
    ):
        with pytest.raises(ClientError) as e:
            ecr.put_signing_configuration(signingConfiguration={"rules": bad})
        assert code(e) == "InvalidParameterException", bad
    assert ecr.delete_signing_configuration()["signingConfiguration"]["rules"] == rules
    with pytest.raises(ClientError) as e:
        ecr.delete_signing_configuration()
    assert code(e) == "SigningConfigurationNotFoundException"


def test_a_push_is_signed_and_the_signature_verifies_against_the_exported_ca(berth, profile):
    west = "eu-west-1"
    ecr = berth.ecr()
    ecr.put_signing_configuration(signingConfiguration={"rules": [
        {"signingProfileArn": profile, "repositoryFilters": [{"filter": "signed/*", "filterType": "WILDCARD_MATCH"}]}]})
    configure(berth, [{"destinations": [dest(west, berth.account_id)]}])
    ecr.create_repository(repositoryName="signed/app")
    ecr.create_repository(repositoryName="plain/app")
    reg = registry(berth)
    image = push_image(reg, "signed/app", "v1")
    plain = push_image(reg, "plain/app", "v1")

    assert signed(berth, "signed/app", image.digest) == [{"signingProfileArn": profile, "status": "COMPLETE"}]
    assert signing_statuses(berth, "plain/app", plain.digest) == []
    refs = wait_until("the signature referrer", lambda: ecr.list_image_referrers(
        repositoryName="signed/app", subjectId={"imageDigest": image.digest})["referrers"])
    assert [r["artifactType"] for r in refs] == [SIGNATURE]
    listed = reg.get(f"/v2/signed/app/referrers/{image.digest}").json()["manifests"]
    assert [m["artifactType"] for m in listed] == [SIGNATURE]
    sig = reg.get(f"/v2/signed/app/manifests/{listed[0]['digest']}",
                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
    assert sig["subject"]["digest"] == image.digest
    envelope = reg.get(f"/v2/signed/app/blobs/{sig['layers'][0]['digest']}").content
    assert sig["layers"][0]["mediaType"] == "application/jose+json"

    ca = x509.load_pem_x509_certificate(berth.admin("signing-ca").stdout.encode())
    verify(envelope, ca, image.body)
    tampered = image.body.replace(b'"schemaVersion"', b'"schemaVersion" ', 1)
    with pytest.raises(InvalidSignature):
        verify(envelope, ca, tampered)
    forged = json.loads(envelope)
    payload = json.loads(b64url(forged["payload"]))
    payload["targetArtifact"]["digest"] = "sha256:" + hashlib.sha256(tampered).hexdigest()
    payload["targetArtifact"]["size"] = len(tampered)
    forged["payload"] = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    with pytest.raises(InvalidSignature):
        verify(json.dumps(forged).encode(), ca, tampered)

    # The signature replicates with its image.
    there = registry(berth, region=west)
    wait_until("the signature in the destination", lambda: [
        m["digest"] for m in there.get(f"/v2/signed/app/referrers/{image.digest}").json().get("manifests", [])
    ] == [listed[0]["digest"]])


def test_a_pusher_who_may_not_sign_gets_a_failed_status_with_the_reason(berth, profile):
    ecr = berth.ecr()
    ecr.put_signing_configuration(signingConfiguration={"rules": [{"signingProfileArn": profile}]})
    ecr.create_repository(repositoryName="team/app")
    i = iam(berth)
    i.create_user(UserName="pusher")
    i.put_user_policy(UserName="pusher", PolicyName="push", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
    }))
    key = i.create_access_key(UserName="pusher")["AccessKey"]
    pusher = boto3.client("ecr", endpoint_url=berth.url, region_name=berth.region,
                          aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    token = wait_until("the pusher's key", lambda: pusher.get_authorization_token())
    password = base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)[1]
    from ocihelpers import Registry
    reg = Registry(berth.url, host=berth.registry_host(), auth=("AWS", password))
    image = push_image(reg, "team/app", "v1")
    [status] = signing_statuses(berth, "team/app", image.digest)
    assert status["status"] == "FAILED" and status["failureCode"] == "SIGNING_PERMISSION_DENIED", status
    assert "signer:SignPayload" in status["failureReason"]
    assert ecr.list_image_referrers(repositoryName="team/app", subjectId={"imageDigest": image.digest})["referrers"] == []

    # Allowed to sign, the same user's next push is signed.
    i.put_user_policy(UserName="pusher", PolicyName="sign", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "signer:SignPayload", "Resource": profile}],
    }))
    image2 = push_image(reg, "team/app", "v2")
    assert signed(berth, "team/app", image2.digest)[0]["status"] == "COMPLETE"


def aws(berth, *args) -> dict:
    import subprocess
    p = subprocess.run(["aws", *args], env=berth.aws_env(AWS_ENDPOINT_URL_SIGNER=berth.url),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else {}


def test_the_aws_cli_drives_managed_signing(berth):
    arn = aws(berth, "signer", "put-signing-profile", "--profile-name", "cli_key",
              "--platform-id", PLATFORM)["arn"]
    assert aws(berth, "signer", "get-signing-profile", "--profile-name", "cli_key")["status"] == "Active"
    config = {"rules": [{"signingProfileArn": arn}]}
    aws(berth, "ecr", "put-signing-configuration", "--signing-configuration", json.dumps(config))
    assert aws(berth, "ecr", "get-signing-configuration")["signingConfiguration"] == config
    berth.ecr().create_repository(repositoryName="cli/app")
    image = push_image(registry(berth), "cli/app", "v1")
    done = wait_until("the image signed", lambda: (s := aws(
        berth, "ecr", "describe-image-signing-status", "--repository-name", "cli/app",
        "--image-id", "imageTag=v1")["signingStatuses"]) and s[0]["status"] == "COMPLETE" and s)
    assert done == [{"signingProfileArn": arn, "status": "COMPLETE"}]
    refs = aws(berth, "ecr", "list-image-referrers", "--repository-name", "cli/app",
               "--subject-id", f"imageDigest={image.digest}")["referrers"]
    assert [r["artifactType"] for r in refs] == [SIGNATURE]
    assert aws(berth, "ecr", "delete-signing-configuration")["signingConfiguration"] == config
    aws(berth, "signer", "cancel-signing-profile", "--profile-name", "cli_key")
