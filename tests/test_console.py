"""The web console, driven in a real headless browser (Debian's chromium and
chromedriver, through Selenium from PyPI; no browser is downloaded): sign-in as an
account's root (access key) and as an IAM user (password), a repository created from
the form, its push commands copied from the page and run with the aws CLI and docker,
the pushed image then shown, a limited user denied with ECR's text, and a form without
its CSRF token refused. Screenshots are kept under $BERTH_ARTIFACTS (default
tests/artifacts/console).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
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

from test_tutorial import app_context, sh, tutorial_env  # noqa: F401 (fixtures)

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
    """Click a link or button that loads another page, and wait for it."""
    html = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(EC.staleness_of(html))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
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


def test_root_creates_a_repository_and_pushes_with_the_push_commands(
        berth, browser, tutorial_env, app_context):  # noqa: F811
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
    browser.refresh()
    rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) == 1 and "latest" in rows[0].text
    digest = berth.ecr().describe_images(repositoryName="web")["imageDetails"][0]["imageDigest"]
    assert digest[:19] in rows[0].text
    shot(browser, "repository")
    # The navigation is boosted by htmx: the page's body is swapped, not reloaded.
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
    browser.find_element(By.ID, "name").send_keys("forbidden")
    submit(browser, browser.find_element(By.ID, "name"))
    alert = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert re.search(r"User: arn:aws:iam::\d{12}:user/viewer is not authorized to perform: "
                     r"ecr:CreateRepository on resource: .*repository/forbidden", alert), alert
    shot(browser, "denied")
    assert "forbidden" not in [r["repositoryName"] for r in berth.ecr().describe_repositories()["repositories"]]


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
