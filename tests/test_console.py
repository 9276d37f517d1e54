"""The web console, driven in a real headless browser (Debian's chromium and
chromedriver, through Selenium from PyPI; no browser is downloaded): sign-in as an
account's root (access key) and as an IAM user (password), a repository created from
the form, its push commands copied from the page and run with the aws CLI and docker,
the pushed image then shown with its scan findings and referrers, a lifecycle policy
previewed and saved, policy editors' validation messages, the registry and event
pages, a limited user denied with ECR's text, and a form without its CSRF token
refused. Screenshots are kept under $BERTH_ARTIFACTS (default tests/artifacts/console).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from ocihelpers import Registry, build_artifact, push_image, push_manifest
from test_tutorial import app_context, sh, tutorial_env  # noqa: F401 (fixtures)
from test_vulnerability_scanning import BASE_FILES, LIBSSL3, OPENSSL, OPENSSL_DSA
from vulnimages import DEBIAN_12_OS_RELEASE, dpkg_status, import_vulndb, wait_for_scan, write_all_zip

ARTIFACTS = Path(os.environ.get("BERTH_ARTIFACTS", Path(__file__).parent / "artifacts")) / "console"


@pytest.fixture
def browser(tmp_path):
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path="/usr/bin/chromedriver"), options=opts)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def submit(driver, element) -> None:
    """Submit the element's form and wait for the next page (a condition, not a delay)."""
    html = driver.find_element(By.TAG_NAME, "html")
    element.submit()
    WebDriverWait(driver, 15).until(EC.staleness_of(html))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def click_through(driver, element) -> None:
    """Click a link or button that loads another page, and wait for it. The click is the
    page's own (a script's), so that chromedriver does not inspect a page already left."""
    html = driver.find_element(By.TAG_NAME, "html")
    driver.execute_script("arguments[0].click()", element)
    WebDriverWait(driver, 15).until(EC.staleness_of(html))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def shot(driver, name: str, at: str | None = None) -> None:
    """Keep a screenshot; `at`: the id of an element to scroll into view first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if at:
        driver.execute_script("arguments[0].scrollIntoView()", driver.find_element(By.ID, at))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def sign_in_with_keys(driver, berth, key: str, secret: str) -> None:
    driver.get(berth.url + "/console/")
    assert "Sign in" in driver.title
    driver.find_element(By.ID, "akid").send_keys(key)
    driver.find_element(By.ID, "secret").send_keys(secret)
    submit(driver, driver.find_element(By.ID, "secret"))


def sign_in_with_password(driver, berth, user: str, password: str) -> None:
    driver.get(berth.url + "/console/signin")
    driver.find_element(By.ID, "account").send_keys(berth.account_id)
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    submit(driver, driver.find_element(By.ID, "password"))


def iam(berth):
    key, secret = berth.credentials()
    return boto3.client("iam", endpoint_url=berth.url, region_name=berth.region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def until(get, ok, timeout: float = 15.0):
    """Poll `get()` until `ok` holds of its value (a condition with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r} after {timeout}s"
        time.sleep(0.1)


def set_text(driver, element_id: str, text: str) -> None:
    """Replace a textarea's text (as pasting would)."""
    driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, element_id), text)


def press(driver, action: str) -> None:
    """Click the form button that sends `action`, and wait for the page it loads."""
    click_through(driver, driver.find_element(By.CSS_SELECTOR, f"button[name=action][value={action}]"))


def alert(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "[role=alert]").text


def notice(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "[role=status]").text


def add_debian_packages(context: Path) -> None:
    """Make the build context's image a Debian 12 with a vulnerable openssl."""
    root = context / "rootfs"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(DEBIAN_12_OS_RELEASE)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(dpkg_status([BASE_FILES, LIBSSL3, OPENSSL]))
    with (context / "Dockerfile").open("a") as f:
        f.write("COPY rootfs/ /\n")


def test_root_creates_a_repository_and_pushes_with_the_push_commands(
        berth, browser, tutorial_env, app_context, tmp_path):  # noqa: F811
    import_vulndb(berth, write_all_zip(tmp_path / "all.zip", [OPENSSL_DSA]))
    add_debian_packages(app_context)
    key, secret = berth.credentials()
    sign_in_with_keys(browser, berth, "AKIAWRONGWRONGWRONG0", "nope")
    assert "authentication information is incorrect" in browser.page_source
    sign_in_with_keys(browser, berth, key, secret)
    assert "Private repositories" in browser.page_source
    assert "root" in browser.find_element(By.CLASS_NAME, "who").text
    browser.find_element(By.ID, "name").send_keys("web")
    browser.find_element(By.CSS_SELECTOR, "input[name=scan_on_push]").click()
    submit(browser, browser.find_element(By.ID, "name"))
    assert browser.current_url.endswith("/console/repositories/web")
    assert browser.find_element(By.TAG_NAME, "h1").text == "web"
    # The repository exists as the API sees it.
    repo = berth.ecr().describe_repositories(repositoryNames=["web"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    # View push commands, copy them, run them in the build context.
    browser.find_element(By.CSS_SELECTOR, "#push-commands summary").click()
    shot(browser, "push-commands")
    commands = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#push-commands pre code")]
    host = berth.registry_host()
    assert commands[0] == (f"aws ecr get-login-password --region {berth.region} | "
                           f"docker login --username AWS --password-stdin {host}")
    assert commands[-1] == f"docker push {host}/web:latest"
    for c in commands:
        sh(f"cd {shlex.quote(str(app_context))} && {c}", tutorial_env)
    # Scanned on push: the image appears with its findings by severity.
    ecr = berth.ecr()
    digest = ecr.describe_images(repositoryName="web")["imageDetails"][0]["imageDigest"]
    wait_for_scan(ecr, "web", digest)
    browser.refresh()
    rows = browser.find_elements(By.CSS_SELECTOR, "#images tbody tr")
    assert len(rows) == 1 and "latest" in rows[0].text
    assert digest[:19] in rows[0].text
    assert "COMPLETE" in rows[0].text and "CRITICAL 2" in rows[0].text, rows[0].text
    shot(browser, "repository")
    # An SBOM that refers to the image is listed as its referrer.
    reg = Registry(berth.url, auth=berth.registry_auth())
    manifest = ecr.batch_get_image(repositoryName="web", imageIds=[{"imageDigest": digest}])["images"][0]
    subject = {"mediaType": manifest["imageManifestMediaType"], "digest": digest,
               "size": len(manifest["imageManifest"].encode())}
    sbom = build_artifact(reg, "web", subject)
    push_manifest(reg, "web", sbom.digest, sbom)
    click_through(browser, browser.find_element(By.CSS_SELECTOR, f"#images a[href$='{digest}']"))
    assert "Scan status COMPLETE" in browser.find_element(By.ID, "scan-status").text
    findings = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#findings tbody tr")]
    assert len(findings) == 2, findings
    for row, package in zip(sorted(findings), ("libssl3", "openssl")):
        assert row.startswith("CVE-2024-0727 CRITICAL " + package + " 3.0.11-1~deb12u1 3.0.13-1~deb12u1 9.8"), row
    referrers = browser.find_element(By.ID, "referrers").text
    assert sbom.digest in referrers and "application/vnd.example.sbom.v1" in referrers
    shot(browser, "image")
    browser.back()
    # The navigation is boosted by htmx: the page's body is swapped, not reloaded.
    browser.get(berth.url + "/console/repositories/web")
    browser.find_element(By.LINK_TEXT, "Repositories").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.endswith("/console/repositories")
                                     and d.find_elements(By.ID, "create"))
    assert "web" in browser.find_element(By.CSS_SELECTOR, "main table").text
    shot(browser, "repositories")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "header button"))  # sign out
    assert "Sign in" in browser.title
    browser.get(berth.url + "/console/repositories")
    assert "Sign in" in browser.title


def test_a_limited_user_sees_what_its_policy_allows(berth, browser):
    berth.create_repository("visible")
    c = iam(berth)
    c.create_user(UserName="viewer")
    c.put_user_policy(UserName="viewer", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecr:DescribeRepositories", "ecr:DescribeImages"],
                       "Resource": "*"}]}))
    c.create_login_profile(UserName="viewer", Password="Viewer-Pass-1")
    sign_in_with_password(browser, berth, "viewer", "wrong-Pass-1")
    assert "authentication information is incorrect" in browser.page_source
    sign_in_with_password(browser, berth, "viewer", "Viewer-Pass-1")
    assert "visible" in browser.find_element(By.CSS_SELECTOR, "main table").text
    # Pages the policy does not allow say so in ECR's words.
    browser.get(berth.url + "/console/repositories/visible/-/lifecycle")
    assert re.search(r"User: arn:aws:iam::\d{12}:user/viewer is not authorized to perform: "
                     r"ecr:GetLifecyclePolicy on resource: .*repository/visible", alert(browser)), alert(browser)
    browser.get(berth.url + "/console/events")
    assert "not authorized to perform: cloudtrail:LookupEvents" in alert(browser)
    browser.get(berth.url + "/console/repositories")
    browser.find_element(By.ID, "name").send_keys("forbidden")
    submit(browser, browser.find_element(By.ID, "name"))
    denial = alert(browser)
    assert re.search(r"User: arn:aws:iam::\d{12}:user/viewer is not authorized to perform: "
                     r"ecr:CreateRepository on resource: .*repository/forbidden", denial), denial
    shot(browser, "denied")
    assert "forbidden" not in [r["repositoryName"] for r in berth.ecr().describe_repositories()["repositories"]]
    # Sign-ins are in the audit trail as CloudTrail's ConsoleLogin, newest first.
    records = until(lambda: [json.loads(line) for line in
                             berth.admin("events", "--event-name", "ConsoleLogin").stdout.splitlines()],
                    lambda rs: len(rs) == 2)
    assert [(r["userIdentity"]["userName"], r["responseElements"]["ConsoleLogin"], r["eventType"])
            for r in records] == [("viewer", "Success", "AwsConsoleSignIn"), ("viewer", "Failure", "AwsConsoleSignIn")]
    assert records[1]["errorMessage"] == "Failed authentication" and "errorCode" not in records[1]
    assert all(r["eventSource"] == "signin.amazonaws.com" and "Viewer-Pass" not in json.dumps(r) for r in records)
    # A new password ends the sessions opened with the old one.
    c.update_login_profile(UserName="viewer", Password="Viewer-Pass-2")
    browser.get(berth.url + "/console/repositories")
    assert "Sign in" in browser.title


def test_forms_without_their_csrf_token_are_refused(berth):
    key, secret = berth.credentials()
    s = requests.Session()
    r = s.get(berth.url + "/console/signin", timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    # Sign-in itself needs the form's token.
    r = s.post(berth.url + "/console/signin", data={"method": "keys", "access_key_id": key,
                                                    "secret_access_key": secret}, timeout=10)
    assert r.status_code == 403
    r = s.post(berth.url + "/console/signin", data={"method": "keys", "access_key_id": key,
                                                    "secret_access_key": secret, "csrf": token},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = s.get(berth.url + "/console/repositories", timeout=10)
    session_token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    for data in ({"name": "nocsrf"}, {"name": "nocsrf", "csrf": "forged"}):
        r = s.post(berth.url + "/console/repositories", data=data, allow_redirects=False, timeout=10)
        assert r.status_code == 403
    assert berth.ecr().describe_repositories()["repositories"] == []
    r = s.post(berth.url + "/console/repositories", data={"name": "withcsrf", "csrf": session_token},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert [x["repositoryName"] for x in berth.ecr().describe_repositories()["repositories"]] == ["withcsrf"]
    # Another browser (no cookie) is sent to sign in; a forged cookie too.
    assert requests.get(berth.url + "/console/repositories", allow_redirects=False,
                        timeout=10).status_code == 303
    r = requests.get(berth.url + "/console/repositories", allow_redirects=False, timeout=10,
                     cookies={"berth_console": "eyJ4IjoxfQ.AAAA"})
    assert r.status_code == 303
    # A session opened with a user's key ends when the key is deleted.
    c = iam(berth)
    c.create_user(UserName="keyed")
    k = c.create_access_key(UserName="keyed")["AccessKey"]
    u = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', u.get(berth.url + "/console/signin", timeout=10).text).group(1)
    r = u.post(berth.url + "/console/signin", allow_redirects=False, timeout=10, data={
        "method": "keys", "access_key_id": k["AccessKeyId"], "secret_access_key": k["SecretAccessKey"], "csrf": token})
    assert r.status_code == 303
    assert u.get(berth.url + "/console/repositories", allow_redirects=False, timeout=10).status_code == 403
    c.delete_access_key(UserName="keyed", AccessKeyId=k["AccessKeyId"])
    r = u.get(berth.url + "/console/repositories", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/console/signin"


LIFECYCLE = {"rules": [{"rulePriority": 1, "description": "Keep the newest v image",
                        "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                                      "countType": "imageCountMoreThan", "countNumber": 1},
                        "action": {"type": "expire"}}]}


def test_a_lifecycle_policy_is_previewed_then_saved(berth, browser):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="app")
    reg = Registry(berth.url, auth=berth.registry_auth())
    pushed = {t: push_image(reg, "app", t).digest for t in ("v1", "v2", "v3")}
    key, secret = berth.credentials()
    sign_in_with_keys(browser, berth, key, secret)
    browser.get(berth.url + "/console/repositories/app/-/lifecycle")
    assert "No policy is saved" in browser.page_source
    # A policy that does not validate: ECR's message, nothing saved.
    set_text(browser, "policy", '{"rules": [{"rulePriority": 0}]}')
    press(browser, "save")
    assert "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: " \
           "'Lifecycle policy validation failure" in alert(browser)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName="app")
    # The preview names the two older v images, and acts on nothing.
    text = json.dumps(LIFECYCLE, indent=2)
    set_text(browser, "policy", text)
    press(browser, "preview")
    assert "would act on 2 images now" in notice(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")
    assert len(rows) == 2
    details = ecr.describe_images(repositoryName="app")["imageDetails"]
    newest = max(details, key=lambda d: (d["imagePushedAt"], d["imageDigest"]))["imageDigest"]
    shown = {r.find_element(By.TAG_NAME, "code").get_attribute("title") for r in rows}
    assert shown == set(pushed.values()) - {newest}
    assert all(" EXPIRE 1 STANDARD" in r.text for r in rows)
    assert len(ecr.list_images(repositoryName="app")["imageIds"]) == 3
    shot(browser, "lifecycle-preview", at="preview")
    preview = ecr.get_lifecycle_policy_preview(repositoryName="app")
    assert {r["imageDigest"] for r in preview["previewResults"]} == shown
    # Saved as the editor holds it.
    press(browser, "save")
    assert "Saved the lifecycle policy." in notice(browser)
    assert ecr.get_lifecycle_policy(repositoryName="app")["lifecyclePolicyText"] == text
    press(browser, "delete")
    assert "Deleted the lifecycle policy." in notice(browser)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName="app")


def test_policy_editors_settings_registry_and_events(berth, browser):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName="svc")
    ecr.create_repository_creation_template(prefix="team", appliedFor=["CREATE_ON_PUSH"],
                                            imageTagMutability="IMMUTABLE", description="team repos")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    ecr.put_replication_configuration(replicationConfiguration={"rules": [{
        "destinations": [{"region": "eu-west-1", "registryId": berth.account_id}],
        "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]})
    key, secret = berth.credentials()
    sign_in_with_keys(browser, berth, key, secret)
    # Repository policy: refused with ECR's message, then saved.
    browser.get(berth.url + "/console/repositories/svc/-/policy")
    # The classic mistake: a principal that does not exist.
    bad = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{berth.account_id}:user/nobody"},
        "Action": "ecr:BatchGetImage"}]}
    set_text(browser, "policy", json.dumps(bad))
    press(browser, "save")
    assert "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'" \
        in alert(browser)
    good = {"Version": "2012-10-17", "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": "*",
                                                   "Action": ["ecr:BatchGetImage"]}]}
    set_text(browser, "policy", json.dumps(good))
    press(browser, "save")
    assert "Saved the repository policy." in notice(browser)
    assert json.loads(ecr.get_repository_policy(repositoryName="svc")["policyText"]) == good
    shot(browser, "repository-policy")
    # Settings: mutability with exclusions, scan on push, a resource tag.
    browser.get(berth.url + "/console/repositories/svc")
    browser.find_element(By.CSS_SELECTOR, "input[name=mutability][value=IMMUTABLE_WITH_EXCLUSION]").click()
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Save settings']"))
    assert "Exclusion filters are required" in alert(browser)
    browser.find_element(By.CSS_SELECTOR, "input[name=mutability][value=IMMUTABLE_WITH_EXCLUSION]").click()
    browser.find_element(By.ID, "exclusions").send_keys("dev-*, latest")
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Save settings']"))
    assert "Saved the settings of svc." in notice(browser)
    repo = ecr.describe_repositories(repositoryNames=["svc"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert [f["filter"] for f in repo["imageTagMutabilityExclusionFilters"]] == ["dev-*", "latest"]
    browser.find_element(By.ID, "tag-key").send_keys("team")
    browser.find_element(By.ID, "tag-value").send_keys("payments")
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Add tag']"))
    arn = repo["repositoryArn"]
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "payments"}]
    # The registry: its policy editor, templates and pull-through cache rules.
    browser.get(berth.url + "/console/registry")
    assert "team repos" in browser.find_element(By.ID, "templates").text
    assert "quay.io" in browser.find_element(By.ID, "cache-rules").text
    assert f"{berth.account_id} · eu-west-1 prod No" in browser.find_element(By.ID, "replication-rules").text
    shot(browser, "registry")
    click_through(browser, browser.find_element(By.XPATH, "//table[@id='templates']//button"))
    assert "Deleted the repository creation template team." in notice(browser)
    assert ecr.describe_repository_creation_templates()["repositoryCreationTemplates"] == []
    assert not browser.find_elements(By.ID, "templates")
    click_through(browser, browser.find_element(By.LINK_TEXT, "Registry policy"))
    set_text(browser, "policy", "not json")
    press(browser, "save")
    assert "Invalid registry policy provided" in alert(browser)
    # The audit trail: the console's calls, as CloudTrail records (newest first), the
    # refused one with its exception; filtered by name.
    browser.get(berth.url + "/console/events?event_name=SetRepositoryPolicy")
    WebDriverWait(browser, 15).until(
        lambda d: d.refresh() or len(d.find_elements(By.CSS_SELECTOR, "#events tbody tr")) == 2)
    saved, refused = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")]
    for row in (saved, refused):
        assert row.startswith(dt.datetime.now(dt.timezone.utc).strftime("%Y-")) and "SetRepositoryPolicy" in row
        assert "root svc 127.0.0.1" in row, row
    assert "Exception" not in saved
    assert refused.endswith("InvalidParameterException: Invalid parameter at 'PolicyText' failed to satisfy "
                            "constraint: 'Invalid repository policy provided'"), refused
    shot(browser, "events")
    records = [json.loads(line) for line in
               berth.admin("events", "--event-name", "PutImageTagMutability").stdout.splitlines()]
    assert [r.get("errorCode") for r in records] == [None, "InvalidParameterException"]
    assert all(r["userAgent"].startswith("Mozilla/") for r in records)
    assert records[0]["requestParameters"]["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"


def test_create_a_repository_with_ecr_options(berth, browser):
    ecr = berth.ecr()
    key, secret = berth.credentials()
    sign_in_with_keys(browser, berth, key, secret)

    def create(name: str, mode: str, exclusions: str, encryption: str, kms_key: str = "") -> None:
        browser.find_element(By.ID, "name").send_keys(name)
        browser.find_element(By.CSS_SELECTOR, f"input[name=mutability][value={mode}]").click()
        browser.find_element(By.ID, "exclusions").send_keys(exclusions)
        browser.find_element(By.CSS_SELECTOR, f"input[name=encryption][value={encryption}]").click()
        browser.find_element(By.ID, "kms_key").send_keys(kms_key)
        browser.find_element(By.ID, "tag_key").send_keys("team")
        browser.find_element(By.ID, "tag_value").send_keys("payments")
        click_through(browser, browser.find_element(By.XPATH, "//button[text()='Create repository']"))

    # ECR's rules, ECR's messages; nothing created.
    create("plain", "MUTABLE", "", "AES256", kms_key="arn:aws:kms:us-east-1:000000000000:key/x")
    assert "Invalid parameter at 'encryptionConfiguration.kmsKey' failed to satisfy constraint: " \
           "'kmsKey is only valid with KMS encryption'" in alert(browser)
    create("loose", "MUTABLE", "dev-*", "AES256")
    assert "Exclusion filters are only allowed with IMMUTABLE_WITH_EXCLUSION" in alert(browser)
    assert ecr.describe_repositories()["repositories"] == []
    create("secure", "IMMUTABLE_WITH_EXCLUSION", "dev-*", "KMS")
    assert browser.current_url.endswith("/console/repositories/secure")
    repo = ecr.describe_repositories(repositoryNames=["secure"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "dev-*"}]
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}", repo["encryptionConfiguration"]["kmsKey"])
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [{"Key": "team", "Value": "payments"}]
    facts = browser.find_element(By.CLASS_NAME, "facts").text
    assert "IMMUTABLE_WITH_EXCLUSION (except dev-*)" in facts and repo["encryptionConfiguration"]["kmsKey"] in facts
