"""Repository creation templates, and create-on-push through them.

What this file covers:

* Create/Describe/Update/DeleteRepositoryCreationTemplate with boto3: the returned
  shape, partial updates, TemplateAlreadyExistsException, TemplateNotFoundException,
  validation of the embedded repository and lifecycle policies and of appliedFor.
* A push (registry API, and docker) to a missing repository under a CREATE_ON_PUSH
  template's prefix creates it with the template's mutability, tags, repository policy
  and lifecycle policy; the longest matching prefix wins over ROOT; a template without
  CREATE_ON_PUSH, or no template, leaves the push failing with NAME_UNKNOWN as on ECR.
* The pusher needs ecr:CreateRepository for the template to create the repository.
"""

from __future__ import annotations

import json

from ocihelpers import Registry, push_image
from test_iam import (
    expect_error,
    iam_client,
    new_user,
    policy,
    allow,
    ecr_client,
    push_policy,
    registry_password,
    repo_statement,
    root_arn,
    docker_login,
    key_env,
    sh,
)

LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "description": "keep ten",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
    "action": {"type": "expire"}}]})
REPO_POLICY = json.dumps(policy(repo_statement("Allow", {"AWS": root_arn("111122223333")}, "ecr:BatchGetImage")))


def create_team_template(ecr, prefix: str = "team", applied_for=("CREATE_ON_PUSH",), **extra):
    return ecr.create_repository_creation_template(
        prefix=prefix,
        description="team repositories",
        appliedFor=list(applied_for),
        imageTagMutability="IMMUTABLE",
        resourceTags=[{"Key": "owner", "Value": "team"}],
        repositoryPolicy=REPO_POLICY,
        lifecyclePolicy=LIFECYCLE,
        **extra,
    )["repositoryCreationTemplate"]


def test_template_crud(berth):
    ecr = berth.ecr()
    t = create_team_template(ecr, prefix="team/")
    assert t["prefix"] == "team"
    assert (t["appliedFor"], t["imageTagMutability"], t["description"]) == (["CREATE_ON_PUSH"], "IMMUTABLE", "team repositories")
    assert t["resourceTags"] == [{"Key": "owner", "Value": "team"}]
    assert t["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert json.loads(t["lifecyclePolicy"]) == json.loads(LIFECYCLE)
    expect_error(lambda: create_team_template(ecr), "TemplateAlreadyExistsException", 400)

    ecr.create_repository_creation_template(prefix="ROOT", appliedFor=["REPLICATION"])
    listed = ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
    assert [x["prefix"] for x in listed] == ["ROOT", "team"]
    one = ecr.describe_repository_creation_templates(prefixes=["team"])["repositoryCreationTemplates"]
    assert [x["prefix"] for x in one] == ["team"]
    page = ecr.describe_repository_creation_templates(maxResults=1)
    assert len(page["repositoryCreationTemplates"]) == 1 and "nextToken" in page

    updated = ecr.update_repository_creation_template(prefix="team", imageTagMutability="MUTABLE")["repositoryCreationTemplate"]
    assert updated["imageTagMutability"] == "MUTABLE"
    assert updated["description"] == "team repositories"  # untouched
    deleted = ecr.delete_repository_creation_template(prefix="team")["repositoryCreationTemplate"]
    assert deleted["prefix"] == "team"
    expect_error(lambda: ecr.delete_repository_creation_template(prefix="team"), "TemplateNotFoundException", 400)
    expect_error(lambda: ecr.update_repository_creation_template(prefix="team", description="x"),
                 "TemplateNotFoundException", 400)


def test_template_contents_are_validated(berth):
    ecr = berth.ecr()
    bad_lifecycle = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any"}, "action": {"type": "expire"}}]})
    message = expect_error(
        lambda: ecr.create_repository_creation_template(prefix="team", appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy=bad_lifecycle),
        "InvalidParameterException", 400,
    )
    assert "Lifecycle policy validation failure" in message
    expect_error(
        lambda: ecr.create_repository_creation_template(prefix="team", appliedFor=["CREATE_ON_PUSH"], repositoryPolicy="{nope"),
        "InvalidParameterException", 400,
    )
    expect_error(lambda: ecr.create_repository_creation_template(prefix="team", appliedFor=["SOMETIMES"]),
                 "ValidationException", 400)
    expect_error(lambda: ecr.create_repository_creation_template(prefix="Bad_Prefix", appliedFor=["CREATE_ON_PUSH"]),
                 "InvalidParameterException", 400)
    assert ecr.describe_repository_creation_templates()["repositoryCreationTemplates"] == []


def test_push_creates_a_repository_from_its_template(berth):
    ecr = berth.ecr()
    create_team_template(ecr)
    ecr.create_repository_creation_template(prefix="team/special", appliedFor=["CREATE_ON_PUSH"],
                                            imageTagMutability="MUTABLE")
    ecr.create_repository_creation_template(prefix="ROOT", appliedFor=["PULL_THROUGH_CACHE"])
    reg = Registry(berth.url, auth=berth.registry_auth())

    push_image(reg, "team/app", "v1")
    repo = ecr.describe_repositories(repositoryNames=["team/app"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [{"Key": "owner", "Value": "team"}]
    assert ecr.get_repository_policy(repositoryName="team/app")["policyText"] == REPO_POLICY
    assert ecr.get_lifecycle_policy(repositoryName="team/app")["lifecyclePolicyText"] == LIFECYCLE
    assert [i["imageTag"] for i in ecr.list_images(repositoryName="team/app")["imageIds"]] == ["v1"]

    # The longest matching prefix wins.
    push_image(reg, "team/special/tool", "v1")
    special = ecr.describe_repositories(repositoryNames=["team/special/tool"])["repositories"][0]
    assert special["imageTagMutability"] == "MUTABLE"

    # ROOT applies only to pull-through cache here: a push elsewhere still needs a repository.
    r = reg.post("/v2/elsewhere/app/blobs/uploads/")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    names = sorted(x["repositoryName"] for x in ecr.describe_repositories()["repositories"])
    assert names == ["team/app", "team/special/tool"]


def test_creating_on_push_needs_create_repository_permission(berth):
    root = berth.ecr()
    create_team_template(root)
    pusher = ecr_client(berth, *new_user(berth, "pusher", policy(allow("ecr:GetAuthorizationToken"), *push_policy("team/app")["Statement"][1:])))
    reg = Registry(berth.url, auth=("AWS", registry_password(pusher)))
    r = reg.post("/v2/team/app/blobs/uploads/")
    assert r.status_code == 403
    assert "ecr:CreateRepository" in r.json()["errors"][0]["message"]
    assert root.describe_repositories()["repositories"] == []

    iam_doc = policy(allow(["ecr:CreateRepository", "ecr:TagResource"], "arn:aws:ecr:*:*:repository/team/*"))
    iam_client(berth).put_user_policy(UserName="pusher", PolicyName="create", PolicyDocument=json.dumps(iam_doc))
    push_image(reg, "team/app", "v1")
    assert [x["repositoryName"] for x in root.describe_repositories()["repositories"]] == ["team/app"]


def test_docker_push_creates_repository_from_template(berth, docker_env, build_test_image, tmp_path):
    create_team_template(berth.ecr())
    env = key_env(berth, docker_env, tmp_path, "root", *berth.credentials())
    host = berth.registry_host()
    docker_login(env, host)
    local = build_test_image()
    sh(f"docker tag {local} {host}/team/web:v1 && docker push {host}/team/web:v1", env)
    repo = berth.ecr().describe_repositories(repositoryNames=["team/web"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    # Without a template, docker gets ECR's answer for a missing repository.
    sh(f"docker tag {local} {host}/loose/web:v1", env)
    failed = sh(f"docker push {host}/loose/web:v1", env, check=False)
    assert failed.returncode != 0
    assert "does not exist" in failed.stdout + failed.stderr
