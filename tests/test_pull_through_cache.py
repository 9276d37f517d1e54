"""The pull-through cache: ECR's five rule operations, and pulls through a rule from
real upstreams on loopback (CNCF Distribution anonymous and with htpasswd, a
Bearer-token registry), with docker and plain HTTP clients, over one and several nodes.

Each upstream is declared in Berth's configuration (``[[pull_through_cache.upstreams]]``),
as an air-gapped deployment declares its mirrors: ECR's own kinds (``quay.io``,
``registry-1.docker.io``) redirected to a loopback endpoint, and URLs outside ECR's
list.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import _psql, fresh_s3_prefix
from ocihelpers import OCI_INDEX, Registry, build_artifact, push_image, sha256
from test_iam import ecr_client, new_user
from test_jobs import wait_until
from upstreams import Distribution, TokenRegistry

TIMEOUT = 120


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def config_file(tmp_path: Path, upstreams: list[dict], name: str = "berth.toml", **cache) -> Path:
    lines = ["[pull_through_cache]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in cache.items()]
    for u in upstreams:
        lines.append("[[pull_through_cache.upstreams]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in u.items()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def secrets_client(berth):
    key, secret = berth.credentials()
    return boto3.client(
        "secretsmanager", endpoint_url=berth.url, region_name=berth.region,
        aws_access_key_id=key, aws_secret_access_key=secret,
    )


def credential_secret(berth, name: str, username: str, token: str) -> str:
    out = secrets_client(berth).create_secret(
        Name=f"ecr-pullthroughcache/{name}",
        SecretString=json.dumps({"username": username, "accessToken": token}),
    )
    return out["ARN"]


def pull(berth, repo: str, ref: str) -> dict:
    """Pull an image over HTTP as a client does: the manifest, then every blob, each
    checked against its digest. Returns the manifest."""
    auth = berth.registry_auth()
    accept = ", ".join([
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ])
    r = requests.get(f"{berth.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept},
                     auth=auth, timeout=TIMEOUT)
    assert r.status_code == 200, f"{repo}:{ref}: {r.status_code} {r.text[:300]}"
    assert r.headers["Docker-Content-Digest"] == sha256(r.content)
    doc = json.loads(r.content)
    for d in [doc["config"], *doc["layers"]]:
        b = requests.get(f"{berth.url}/v2/{repo}/blobs/{d['digest']}", auth=auth, timeout=TIMEOUT)
        assert b.status_code == 200, f"{d['digest']}: {b.status_code} {b.text[:300]}"
        assert sha256(b.content) == d["digest"] and len(b.content) == d["size"]
    return doc


def image_stored(berth, repo: str, tag: str) -> bool:
    try:
        images = berth.ecr().describe_images(repositoryName=repo)["imageDetails"]
    except ClientError:
        return False
    return any(tag in i.get("imageTags", []) for i in images)


def digest_stored(berth, repo: str, digest: str) -> bool:
    try:
        berth.ecr().describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])
        return True
    except ClientError:
        return False


def age_tag_checks(berth, hours: int) -> None:
    """Move the cache's record of when it last asked the upstream back by `hours`:
    what the passing of that much time looks like to Berth."""
    sql = f"UPDATE upstream_manifests SET checked_at = checked_at - {hours * 3600 * 1000}"
    url = berth.metadata_url
    if url and url.startswith("postgres"):
        _psql(url, sql)
        return
    path = url[len("sqlite:"):] if url else str(berth.data_dir / "meta.db")
    con = sqlite3.connect(path, timeout=30)
    with con:
        con.execute(sql)
    con.close()


@pytest.fixture
def distribution(tmp_path):
    d = Distribution(tmp_path / "distribution").start()
    yield d
    d.stop()


# ---------------------------------------------------------------------------
# the five operations
# ---------------------------------------------------------------------------


def test_rules_are_created_described_updated_and_deleted_with_ecrs_errors(berth_factory, tmp_path):
    cfg = config_file(tmp_path, [{"url": "harbor.internal", "endpoint": "http://127.0.0.1:9", "credentials": "optional"}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    ecr = berth.ecr()

    created = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    assert created["upstreamRegistry"] == "quay"
    assert created["upstreamRepositoryPrefix"] == "ROOT"
    assert created["registryId"] == berth.account_id

    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    assert error_code(e) == "PullThroughCacheRuleAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="Bad_Prefix", upstreamRegistryUrl="quay.io")
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="own", upstreamRegistryUrl="registry.example.com")
    assert error_code(e) == "UnsupportedUpstreamRegistryException"
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="gh", upstreamRegistryUrl="quay.io",
                                           upstreamRegistry="github-container-registry")
    assert error_code(e) == "UnsupportedUpstreamRegistryException"
    # Docker Hub needs credentials, from a secret that exists.
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io")
    assert error_code(e) == "InvalidParameterException"
    missing = f"arn:aws:secretsmanager:{berth.region}:{berth.account_id}:secret:ecr-pullthroughcache/none-AbCdEf"
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io",
                                           credentialArn=missing)
    assert error_code(e) == "SecretNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io",
                                           credentialArn="arn:aws:secretsmanager:us-east-1:1:secret:other/x" + "y" * 20)
    assert error_code(e) == "InvalidParameterException"

    arn = credential_secret(berth, "hub", "me", "token-1")
    hub = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io",
                                             credentialArn=arn)
    assert hub["credentialArn"] == arn and hub["upstreamRegistry"] == "docker-hub"
    # A URL outside ECR's list is accepted because the configuration declares it.
    own = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="own/team", upstreamRegistryUrl="harbor.internal",
                                             upstreamRepositoryPrefix="library")
    assert "upstreamRegistry" not in own and own["upstreamRepositoryPrefix"] == "library"

    rules = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert [r["ecrRepositoryPrefix"] for r in rules] == ["hub", "own/team", "quay"]
    page = ecr.describe_pull_through_cache_rules(maxResults=2)
    assert len(page["pullThroughCacheRules"]) == 2 and page["nextToken"]
    one = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["hub"])["pullThroughCacheRules"]
    assert [r["upstreamRegistryUrl"] for r in one] == ["registry-1.docker.io"]
    with pytest.raises(ClientError) as e:
        ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["nope"])
    assert error_code(e) == "PullThroughCacheRuleNotFoundException"

    arn2 = credential_secret(berth, "hub2", "me", "token-2")
    updated = ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="hub", credentialArn=arn2)
    assert updated["credentialArn"] == arn2 and "updatedAt" in updated
    with pytest.raises(ClientError) as e:
        ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="nope", credentialArn=arn2)
    assert error_code(e) == "PullThroughCacheRuleNotFoundException"

    deleted = ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert deleted["upstreamRegistryUrl"] == "quay.io"
    with pytest.raises(ClientError) as e:
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert error_code(e) == "PullThroughCacheRuleNotFoundException"
    # The unreachable declared upstream: Validate says why, as a failure, not an error.
    v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="own/team")
    assert v["isValid"] is False and v["failure"]


# ---------------------------------------------------------------------------
# pulls through a rule
# ---------------------------------------------------------------------------


def test_a_first_pull_fetches_each_manifest_and_blob_once_and_later_pulls_are_local(berth_factory, tmp_path, distribution):
    upstream = distribution.client()
    app = push_image(upstream, "team/app", "v1", layers=3)
    pinned = push_image(upstream, "team/pinned", None, layers=2)
    assert upstream.put(f"/v2/team/pinned/manifests/{pinned.digest}", data=pinned.body,
                        headers={"Content-Type": pinned.media_type}).status_code == 201
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    ecr = berth.ecr()
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")

    doc = pull(berth, "quay/team/app", "v1")
    # The repository was created by the first pull, and the image stored whole.
    wait_until("the imported image", lambda: image_stored(berth, "quay/team/app", "v1"))
    gets = distribution.gets()
    assert gets["/v2/team/app/manifests/v1"] == 1
    for d in [doc["config"], *doc["layers"]]:
        assert gets[f"/v2/team/app/blobs/{d['digest']}"] == 1, gets

    # Later pulls are served from the cache: the upstream sees nothing more. (The
    # import asks for the image's referrers after storing it, so that lookup, API or
    # fallback tag, may land on either side of this line: it is left out.)
    def content(g: dict) -> dict:
        return {k: v for k, v in g.items() if "/referrers/" not in k and "/manifests/sha256-" not in k}

    pull(berth, "quay/team/app", "v1")
    assert content(distribution.gets()) == content(gets)

    # Pull by digest works on the first pull.
    pull(berth, "quay/team/pinned", pinned.digest)
    wait_until("the pinned image", lambda: digest_stored(berth, "quay/team/pinned", pinned.digest))

    # BatchGetImage (boto3) brings an image in as a pull does.
    api = push_image(upstream, "team/api", "v2", layers=1)
    got = ecr.batch_get_image(repositoryName="quay/team/api", imageIds=[{"imageTag": "v2"}, {"imageTag": "gone"}])
    assert [i["imageId"]["imageDigest"] for i in got["images"]] == [api.digest]
    assert [f["failureCode"] for f in got["failures"]] == ["ImageNotFound"]
    wait_until("the API-imported image", lambda: image_stored(berth, "quay/team/api", "v2"))

    # An image the upstream lacks is the client's 404.
    r = requests.get(f"{berth.url}/v2/quay/team/app/manifests/nope", auth=berth.registry_auth(), timeout=TIMEOUT)
    assert r.status_code == 404, r.text
    # Names no rule covers are not fetched.
    r = requests.get(f"{berth.url}/v2/other/app/manifests/v1", auth=berth.registry_auth(), timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_cached_images_survive_the_upstream_and_moved_tags_are_picked_up_after_the_recheck(berth_factory, tmp_path, distribution):
    upstream = distribution.client()
    first = push_image(upstream, "lib/tool", "stable", layers=1)
    cfg = config_file(tmp_path, [{"url": "mirror.internal", "endpoint": distribution.url}], tag_recheck_seconds=3600)
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="mirror", upstreamRegistryUrl="mirror.internal")
    pull(berth, "mirror/lib/tool", "stable")
    wait_until("the imported image", lambda: image_stored(berth, "mirror/lib/tool", "stable"))

    # The tag moves upstream; within the re-check interval the cached image is served.
    second = push_image(upstream, "lib/tool", "stable", layers=2)
    pull(berth, "mirror/lib/tool", "stable")
    got = requests.get(f"{berth.url}/v2/mirror/lib/tool/manifests/stable", auth=berth.registry_auth(),
                       headers={"Accept": first.media_type}, timeout=TIMEOUT)
    assert got.headers["Docker-Content-Digest"] == first.digest

    # Past the interval the upstream is asked again and the new image is served.
    age_tag_checks(berth, 2)
    got = requests.get(f"{berth.url}/v2/mirror/lib/tool/manifests/stable", auth=berth.registry_auth(),
                       headers={"Accept": second.media_type}, timeout=TIMEOUT)
    assert got.headers["Docker-Content-Digest"] == second.digest
    pull(berth, "mirror/lib/tool", "stable")
    wait_until("the moved tag stored", lambda: any(
        second.digest == i["imageDigest"] and "stable" in i.get("imageTags", [])
        for i in berth.ecr().describe_images(repositoryName="mirror/lib/tool")["imageDetails"]))

    # With the upstream gone, what is cached is still served, even when a re-check is due.
    distribution.stop()
    age_tag_checks(berth, 2)
    got = requests.get(f"{berth.url}/v2/mirror/lib/tool/manifests/stable", auth=berth.registry_auth(),
                       headers={"Accept": second.media_type}, timeout=TIMEOUT)
    assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == second.digest
    pull(berth, "mirror/lib/tool", "stable")


def test_basic_and_bearer_upstreams_use_the_rules_secret(berth_factory, tmp_path):
    basic = Distribution(tmp_path / "basic", htpasswd=("puller", "s3cret")).start()
    plain = Distribution(tmp_path / "plain").start()
    token = TokenRegistry(plain, "robot", "tok3n").start()
    try:
        push_image(basic.client(), "private/app", "v1", layers=2)
        push_image(plain.client(), "org/app", "v1", layers=2)
        cfg = config_file(tmp_path, [
            {"url": "registry-1.docker.io", "endpoint": basic.url},
            {"url": "ghcr.io", "endpoint": token.url},
        ])
        berth = berth_factory(extra_args=["--config", str(cfg)])
        env = berth.aws_env()
        # The aws CLI creates the secrets and the rules, as ECR's guide does.
        def aws(*args):
            p = subprocess.run(["aws", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout or "{}")
        hub_arn = aws("secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/docker-hub",
                      "--secret-string", json.dumps({"username": "puller", "accessToken": "s3cret"}))["ARN"]
        gh_arn = aws("secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/ghcr",
                     "--secret-string", json.dumps({"username": "robot", "accessToken": "tok3n"}))["ARN"]
        aws("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "docker-hub",
            "--upstream-registry-url", "registry-1.docker.io", "--credential-arn", hub_arn)
        aws("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "github",
            "--upstream-registry-url", "ghcr.io", "--upstream-registry", "github-container-registry",
            "--credential-arn", gh_arn)
        for prefix in ("docker-hub", "github"):
            v = aws("ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", prefix)
            assert v["isValid"] is True, v

        pull(berth, "docker-hub/private/app", "v1")
        pull(berth, "github/org/app", "v1")
        assert token.token_requests, "the Bearer flow was not used"

        # Wrong credentials: Validate says so, and a pull of something uncached fails.
        bad = aws("secretsmanager", "create-secret", "--name", "ecr-pullthroughcache/wrong",
                  "--secret-string", json.dumps({"username": "puller", "accessToken": "nope"}))["ARN"]
        aws("ecr", "update-pull-through-cache-rule", "--ecr-repository-prefix", "docker-hub", "--credential-arn", bad)
        v = aws("ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "docker-hub")
        assert v["isValid"] is False and v["failure"], v
        push_image(basic.client(), "private/other", "v1", layers=1)
        r = requests.get(f"{berth.url}/v2/docker-hub/private/other/manifests/v1", auth=berth.registry_auth(),
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
        got = berth.ecr().batch_get_image(repositoryName="docker-hub/private/other", imageIds=[{"imageTag": "v1"}])
        assert [f["failureCode"] for f in got["failures"]] == ["UpstreamAccessDenied"], got
        # What was cached before is still served.
        pull(berth, "docker-hub/private/app", "v1")
    finally:
        token.stop()
        plain.stop()
        basic.stop()


def test_docker_pulls_through_the_cache(berth_factory, tmp_path, distribution, docker_env, build_test_image):
    tag = build_test_image()
    source = f"127.0.0.1:{distribution.port}/base/image:1.0"
    subprocess.run(["docker", "tag", tag, source], env=docker_env, check=True, capture_output=True)
    p = subprocess.run(["docker", "push", source], env=docker_env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    host = berth.registry_host()
    login = subprocess.run(["docker", "login", "--username", "AWS", "--password-stdin", host],
                           input=berth.registry_password(), env=docker_env, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    ref = f"{host}/quay/base/image:1.0"
    p = subprocess.run(["docker", "pull", ref], env=docker_env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout + p.stderr
    run = subprocess.run(["docker", "run", "--rm", "--network", "none", ref], env=docker_env,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0 and "tini" in (run.stdout + run.stderr), run.stdout + run.stderr
    wait_until("the imported image", lambda: image_stored(berth, "quay/base/image", "1.0"))
    subprocess.run(["docker", "rmi", ref], env=docker_env, capture_output=True)


def test_fifty_concurrent_pulls_over_three_nodes_fetch_each_byte_once(berth_factory, tmp_path, s3_bucket, distribution):
    upstream = distribution.client()
    image = push_image(upstream, "big/image", "v1", layers=4)
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    key = tmp_path / "master.key"
    shared = None if os.environ.get("BERTH_TEST_POSTGRES") else f"sqlite:{tmp_path / 'shared.db'}"
    blobs = fresh_s3_prefix(s3_bucket)
    args = ["--config", str(cfg), "--master-key-file", str(key)]
    a = berth_factory(extra_args=args, metadata_url=shared, blobs_url=blobs)
    nodes = [a] + [berth_factory(extra_args=args, metadata_url=a.metadata_url, blobs_url=blobs) for _ in range(2)]
    for n in nodes[1:]:
        (n.data_dir / "credentials").write_bytes((a.data_dir / "credentials").read_bytes())
    a.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(pull, nodes[i % 3], "quay/big/image", "v1") for i in range(50)]
        docs = [f.result() for f in futures]
    assert all(d == docs[0] for d in docs)
    gets = distribution.gets()
    assert gets["/v2/big/image/manifests/v1"] == 1, gets
    doc = json.loads(image.body)
    for d in [doc["config"], *doc["layers"]]:
        assert gets[f"/v2/big/image/blobs/{d['digest']}"] == 1, gets
    wait_until("the imported image", lambda: image_stored(a, "quay/big/image", "v1"))


def test_referrers_of_a_cached_image_are_cached_too(berth_factory, tmp_path, distribution):
    upstream = distribution.client()
    image = push_image(upstream, "signed/app", "v1", layers=1)
    # A signature, as a client pushes it to a registry without the referrers API: the
    # artifact by digest, and the fallback tag `sha256-<hex>` indexing it.
    sig = build_artifact(upstream, "signed/app", subject=image.as_descriptor(),
                         artifact_type="application/vnd.example.signature.v1")
    assert upstream.put(f"/v2/signed/app/manifests/{sig.digest}", data=sig.body,
                        headers={"Content-Type": sig.media_type}).status_code == 201, "artifact"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        sig.as_descriptor(artifactType="application/vnd.example.signature.v1")]}
    body = json.dumps(index).encode()
    fallback = "sha256-" + image.digest.split(":", 1)[1]
    assert upstream.put(f"/v2/signed/app/manifests/{fallback}", data=body,
                        headers={"Content-Type": OCI_INDEX}).status_code == 201, "fallback tag"

    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    pull(berth, "quay/signed/app", "v1")
    wait_until("the signature cached", lambda: digest_stored(berth, "quay/signed/app", sig.digest))
    listed = berth.ecr().list_image_referrers(repositoryName="quay/signed/app",
                                             subjectId={"imageDigest": image.digest})["referrers"]
    assert [r["digest"] for r in listed] == [sig.digest]
    assert listed[0]["artifactType"] == "application/vnd.example.signature.v1"
    r = requests.get(f"{berth.url}/v2/quay/signed/app/referrers/{image.digest}", auth=berth.registry_auth(),
                     timeout=TIMEOUT)
    assert [m["digest"] for m in r.json()["manifests"]] == [sig.digest]


def user_auth(berth, key: str, secret: str) -> tuple[str, str]:
    token = ecr_client(berth, key, secret).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return ("AWS", base64.b64decode(token).decode().split(":", 1)[1])


def test_a_first_pull_needs_batch_import_upstream_image_and_create_repository(berth_factory, tmp_path, distribution):
    upstream = distribution.client()
    push_image(upstream, "team/app", "v1", layers=1)
    push_image(upstream, "team/other", "v1", layers=1)
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    managed = "arn:aws:iam::aws:policy/"
    reader = user_auth(berth, *new_user(berth, "reader", managed_arns=[managed + "AmazonEC2ContainerRegistryReadOnly"]))
    puller = user_auth(berth, *new_user(berth, "puller", managed_arns=[managed + "AmazonEC2ContainerRegistryPullOnly"]))
    creator = user_auth(berth, *new_user(berth, "creator", managed_arns=[managed + "AmazonEC2ContainerRegistryPullOnly"],
                                         policy_doc={"Version": "2012-10-17", "Statement": [
                                             {"Effect": "Allow", "Action": "ecr:CreateRepository", "Resource": "*"}]}))

    def get(auth, repo):
        return requests.get(f"{berth.url}/v2/{repo}/manifests/v1", auth=auth, timeout=TIMEOUT,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})

    # ReadOnly lacks BatchImportUpstreamImage; PullOnly lacks CreateRepository for a
    # repository that does not exist yet.
    for auth in (reader, puller):
        r = get(auth, "quay/team/app")
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
    assert get(creator, "quay/team/app").status_code == 200
    # Once the repository exists, PullOnly may bring in more; ReadOnly still may not.
    wait_until("the imported image", lambda: image_stored(berth, "quay/team/app", "v1"))
    assert get(reader, "quay/team/app").status_code == 200, "a cached image is a plain pull"
    berth.ecr().create_repository(repositoryName="quay/team/other")
    assert get(reader, "quay/team/other").status_code == 403
    assert get(puller, "quay/team/other").status_code == 200


def test_cached_images_not_pulled_for_the_configured_days_expire(berth_factory, tmp_path, distribution):
    from datetime import datetime, timedelta, timezone

    upstream = distribution.client()
    push_image(upstream, "team/app", "v1", layers=1)
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}], expire_unpulled_days=7)
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    berth.ecr().create_repository(repositoryName="quay-lookalike/app")
    pull(berth, "quay/team/app", "v1")
    wait_until("the imported image", lambda: image_stored(berth, "quay/team/app", "v1"))

    def expire(days: int) -> str:
        at = (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return berth.admin("pull-through-cache", "expire", "--at", at, "--config", str(cfg)).stdout

    assert "0 images expired" in expire(6)
    assert image_stored(berth, "quay/team/app", "v1")
    assert "1 images expired" in expire(8)
    assert not image_stored(berth, "quay/team/app", "v1")
    # Expired is not gone for good: the next pull brings it back from the upstream.
    pull(berth, "quay/team/app", "v1")
    wait_until("the image cached again", lambda: image_stored(berth, "quay/team/app", "v1"))


def test_skopeo_copies_an_index_through_the_cache(berth_factory, tmp_path, distribution):
    upstream = distribution.client()
    amd = push_image(upstream, "multi/app", None, layers=1)
    arm = push_image(upstream, "multi/app", None, layers=2)
    for m in (amd, arm):
        assert upstream.put(f"/v2/multi/app/manifests/{m.digest}", data=m.body,
                            headers={"Content-Type": m.media_type}).status_code == 201
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        amd.as_descriptor(platform={"architecture": "amd64", "os": "linux"}),
        arm.as_descriptor(platform={"architecture": "arm64", "os": "linux"})]}
    body = json.dumps(index).encode()
    assert upstream.put("/v2/multi/app/manifests/v1", data=body,
                        headers={"Content-Type": OCI_INDEX}).status_code == 201
    cfg = config_file(tmp_path, [{"url": "quay.io", "endpoint": distribution.url}])
    berth = berth_factory(extra_args=["--config", str(cfg)])
    berth.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    out = tmp_path / "layout"
    p = subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false", "--src-creds", f"AWS:{berth.registry_password()}",
         f"docker://127.0.0.1:{berth.port}/quay/multi/app:v1", f"oci:{out}:v1"],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    r = requests.get(f"{berth.url}/v2/quay/multi/app/manifests/v1", auth=berth.registry_auth(),
                     headers={"Accept": OCI_INDEX}, timeout=TIMEOUT)
    assert r.headers["Docker-Content-Digest"] == sha256(body), r.text
    # (skopeo recompresses these synthetic layers into the layout, so the layout's own
    # digests differ; what Berth served was checked by skopeo against the digests.)
    assert len(json.loads((out / "index.json").read_text())["manifests"]) == 1
    # The index and both platforms are stored, complete.
    wait_until("the imported index", lambda: image_stored(berth, "quay/multi/app", "v1"))
    for m in (amd, arm):
        assert digest_stored(berth, "quay/multi/app", m.digest)


def test_ecr_to_ecr_rules_read_another_region_and_account_as_the_custom_role(berth_factory, tmp_path):
    berth = berth_factory()
    ecr = berth.ecr()
    iam = boto3.client("iam", endpoint_url=berth.url, region_name=berth.region,
                       aws_access_key_id=berth.credentials()[0], aws_secret_access_key=berth.credentials()[1])
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "pullthroughcache.ecr.amazonaws.com"}}]}
    role = iam.create_role(RoleName="ptc-puller", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(RoleName="ptc-puller", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly")

    # Upstreams: the same account in us-west-2, and another account's registry.
    west = Registry(berth.url, host=berth.registry_host(region="us-west-2"), auth=berth.registry_auth("us-west-2"))
    berth.ecr("us-west-2").create_repository(repositoryName="base/app")
    image = push_image(west, "base/app", "v1", layers=2)
    other = "111111111111"
    key, secret = berth.account_credentials(other)
    other_ecr = boto3.client("ecr", endpoint_url=berth.url, region_name=berth.region,
                             aws_access_key_id=key, aws_secret_access_key=secret)
    other_ecr.create_repository(repositoryName="shared/lib")
    theirs = Registry(berth.url, host=berth.registry_host(account=other), auth=berth.registry_auth(account=other))
    lib = push_image(theirs, "shared/lib", "v1", layers=1)

    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="west", upstreamRegistry="ecr", customRoleArn=role,
                                       upstreamRegistryUrl=f"{berth.account_id}.dkr.ecr.us-west-2.amazonaws.com")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="partner", upstreamRegistry="ecr", customRoleArn=role,
                                       upstreamRegistryUrl=f"{other}.dkr.ecr.{berth.region}.amazonaws.com")
    with pytest.raises(ClientError) as e:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="nope", upstreamRegistry="ecr",
                                           upstreamRegistryUrl=f"{other}.dkr.ecr.{berth.region}.amazonaws.com")
    assert error_code(e) == "InvalidParameterException"
    assert ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="west")["isValid"] is True

    doc = pull(berth, "west/base/app", "v1")
    assert doc["layers"] == json.loads(image.body)["layers"]
    wait_until("the imported image", lambda: image_stored(berth, "west/base/app", "v1"))

    # The other account's repository policy decides: denied until it grants the role.
    r = requests.get(f"{berth.url}/v2/partner/shared/lib/manifests/v1", auth=berth.registry_auth(), timeout=TIMEOUT,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 403, r.text
    other_ecr.set_repository_policy(repositoryName="shared/lib", policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": role},
                                               "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}))
    pull(berth, "partner/shared/lib", "v1")
    wait_until("the partner image", lambda: digest_stored(berth, "partner/shared/lib", lib.digest))
