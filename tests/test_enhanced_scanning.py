"""Enhanced scanning: language packages, ECR's enhancedFindings shape, continuous rescans.

What this file covers:

* With the registry's scan type ENHANCED, a push matched by a rule is scanned without
  StartImageScan, and the scan reads language packages as well as the OS's: Python
  (a wheel's dist-info METADATA, an egg-info file), npm (installed package.json files,
  scoped ones included, and a package-lock.json whose dev packages are left out), a Go
  binary built by the Go toolchain (its modules and its standard library), Cargo.lock
  and a binary with `cargo auditable`'s `.dep-v0` section (added by objcopy),
  and a jar made by the JDK's `jar` with a jar nested in it. A whiteout in a later layer
  hides a deleted vulnerable package; a fixed version is no finding.
* The findings are ECR's `enhancedFindings` (package manager, file, layer, fixed-in
  version, CVSS, the image as the resource), with status ACTIVE and ECR's description;
  DescribeImages agrees. The same image under BASIC gets only its OS findings.
* A refresh of the vulnerability data rescans the images under a CONTINUOUS_SCAN rule
  (without a push), keeps when each finding was first observed, and leaves images
  scanned on push as they were.
* With two nodes sharing metadata and a bucket, the rescan after a refresh is done by
  the node that takes the scan job over when its holder is killed.
* An image with no OS (a Go binary on scratch) is UNSUPPORTED_IMAGE under BASIC and
  scanned under ENHANCED; an ecosystem with no data loaded is named, never reported clean.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ocihelpers import Registry
from test_jobs import holder_pid, jobs, two_nodes, wait_until
from test_vulnerability_scanning import (
    BASE_FILES,
    LIBSSL3,
    OPENSSL,
    OPENSSL_DSA,
    V55,
    V75,
    V81,
    V98,
    debian_layer,
    scan,
    ts,
)
from vulnimages import (
    UNSUPPORTED_PREFIX,
    affected,
    all_findings,
    auditable_binary,
    cargo_lock,
    enhanced_findings,
    file,
    go_binary,
    import_vulndb,
    jar_file,
    layer,
    npm_lockfile,
    npm_manifest,
    osv,
    push_layers,
    python_metadata,
    tree,
    wait_for_scan,
    whiteout,
    write_all_zip,
)

CONTINUOUS = "Continuous scan is selected for image."
ON_PUSH = "Scan on push is selected for image."


@pytest.fixture
def ecr(berth):
    return berth.ecr()


@pytest.fixture
def reg(berth):
    return Registry(berth.url, auth=berth.registry_auth())


def rule(frequency: str, *filters: str) -> dict:
    return {"scanFrequency": frequency, "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in filters]}


# ============================================================================ the data

PYPI = [
    osv("GHSA-462w-v97r-4m45", affected("PyPI", "jinja2", fixed="2.10.1"), aliases=["CVE-2019-10906"],
        modified="2024-02-01T00:00:00Z", summary="Jinja2 sandbox escape via str.format_map", cvss=V98),
    # OSV spells it as PyPI does; the egg-info says "PyYAML": names compare normalized.
    osv("GHSA-8q59-q68h-6hv4", affected("PyPI", "PyYAML", fixed="5.4"), aliases=["CVE-2020-14343"],
        modified="2024-02-02T00:00:00Z", summary="Improper input validation in PyYAML", cvss=V98),
    # Installed in a lower layer, deleted by a whiteout above: no finding.
    osv("GHSA-q2q7-5pp4-w6pg", affected("PyPI", "urllib3", fixed="1.26.5"), aliases=["CVE-2021-33503"],
        modified="2024-02-03T00:00:00Z", summary="urllib3 catastrophic backtracking", cvss=V75),
    # Fixed below the installed version: no finding.
    osv("GHSA-x84v-xcm2-53pg", affected("PyPI", "requests", fixed="2.20.0"), aliases=["CVE-2018-18074"],
        modified="2024-02-04T00:00:00Z", summary="requests leaks Authorization headers", cvss=V75),
]
NPM = [
    osv("GHSA-35jh-r3h4-6jhm", affected("npm", "lodash", fixed="4.17.21"), aliases=["CVE-2021-23337"],
        modified="2024-03-01T00:00:00Z", summary="Command injection in lodash", cvss=V81),
    osv("GHSA-67hx-6x53-jw92", affected("npm", "@babel/traverse", fixed="7.23.2"), aliases=["CVE-2023-45133"],
        modified="2024-03-02T00:00:00Z", summary="Babel vulnerable to arbitrary code execution", cvss=V98),
    osv("GHSA-vh95-rmgr-6w4m", affected("npm", "minimist", fixed="0.2.1"), aliases=["CVE-2020-7598"],
        modified="2024-03-03T00:00:00Z", summary="Prototype pollution in minimist", cvss=V55),
    # Only a development dependency in the lockfile: no finding.
    osv("GHSA-jest-0000-0000", affected("npm", "jest", fixed="30.0.0"), aliases=["CVE-2099-0001"],
        modified="2024-03-04T00:00:00Z", summary="not installed in production", cvss=V98),
]
GO = [
    osv("GO-2022-1059", affected("Go", "golang.org/x/text", fixed="0.3.8"), aliases=["CVE-2022-32149"],
        modified="2024-04-01T00:00:00Z", summary="Denial of service via crafted Accept-Language header", cvss=V75),
    osv("GO-2024-2687", affected("Go", "stdlib", fixed="1.99.0"), aliases=["CVE-2023-45288"],
        modified="2024-04-02T00:00:00Z", summary="HTTP/2 CONTINUATION flood in net/http", cvss=V75),
]
CRATES = [
    osv("RUSTSEC-2021-0003", affected("crates.io", "smallvec", introduced="1.6.0", fixed="1.6.1"),
        aliases=["CVE-2021-25900"], modified="2024-05-01T00:00:00Z", summary="Buffer overflow in SmallVec::insert_many",
        cvss=V98),
    osv("RUSTSEC-2020-0071", affected("crates.io", "time", fixed="0.2.23"), aliases=["CVE-2020-26235"],
        modified="2024-05-02T00:00:00Z", summary="Potential segfault in the time crate", cvss=V55),
]
MAVEN = [
    osv("GHSA-jfh8-c2jp-5v3q", affected("Maven", "org.apache.logging.log4j:log4j-core", introduced="2.0-beta9",
                                        fixed="2.15.0"),
        aliases=["CVE-2021-44228"], modified="2024-06-01T00:00:00Z", summary="Remote code injection in Log4j",
        cvss=V98),
]
NEWEST = "2024-06-01T00:00:00Z"


def import_all(berth, tmp_path: Path, extra=(), **dumps) -> None:
    paths = [write_all_zip(tmp_path / f"{name}.zip", records) for name, records in dumps.items()]
    lines = import_vulndb(berth, *paths, extra=extra)
    assert len(lines) == len(dumps), lines


PY = "usr/local/lib/python3.11/site-packages"


def language_layers(tmp_path: Path) -> tuple[list, str]:
    """The applications' layer and a layer that deletes one package; the Go version."""
    log4j = jar_file(tmp_path, "org.apache.logging.log4j", "log4j-core", "2.14.1")
    app_jar = jar_file(tmp_path, "com.example", "app", "1.0", nested=[("log4j-core-2.14.1.jar", log4j)])
    goapp, go_version = go_binary(tmp_path, {"golang.org/x/text": "v0.3.7"})
    apps = tree({
        "usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA": python_metadata("Jinja2", "2.10"),
        "usr/lib/python3/dist-packages/PyYAML-5.3.egg-info": python_metadata("PyYAML", "5.3", egg=True),
        f"{PY}/urllib3-1.26.0.dist-info/METADATA": python_metadata("urllib3", "1.26.0"),
        f"{PY}/requests-2.31.0.dist-info/METADATA": python_metadata("requests", "2.31.0"),
        "app/node_modules/lodash/package.json": npm_manifest("lodash", "4.17.20"),
        "app/node_modules/lodash/lib/package.json": npm_manifest("not-a-package", "0.0.1"),
        "app/node_modules/@babel/traverse/package.json": npm_manifest("@babel/traverse", "7.22.0"),
        "app/package.json": npm_manifest("app", "1.0.0"),
        "app/package-lock.json": npm_lockfile("app", {"node_modules/minimist": ("0.0.8", False),
                                                      "node_modules/jest": ("29.0.0", True)}),
        "srv/rust/Cargo.lock": cargo_lock("server", {"smallvec": "1.6.0", "serde": "1.0.100"}),
        "opt/app/app.jar": app_jar,
    })
    apps.append(file("usr/local/bin/goapp", goapp, mode=0o755))
    apps.append(file("usr/local/bin/rustapp", auditable_binary(tmp_path, {"time": "0.1.43", "smallvec": "1.6.1"}),
                     mode=0o755))
    deleted = [whiteout(f"{PY}/urllib3-1.26.0.dist-info")]
    return [layer(apps), layer(deleted)], go_version


def expected_enhanced(layers, go_version: str) -> set[tuple]:
    """(vulnerabilityId, package, version, manager, file, fixed in, layer, severity)."""
    base, apps = layers[0].digest, layers[1].digest
    stdlib = go_version.removeprefix("go")
    return {
        ("CVE-2024-0727", "libssl3", "3.0.11-1~deb12u1", "OS", "var/lib/dpkg/status", "3.0.13-1~deb12u1", base,
         "CRITICAL"),
        ("CVE-2024-0727", "openssl", "3.0.11-1~deb12u1", "OS", "var/lib/dpkg/status", "3.0.13-1~deb12u1", base,
         "CRITICAL"),
        ("CVE-2019-10906", "Jinja2", "2.10", "PYTHONPKG", "usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA",
         "2.10.1", apps, "CRITICAL"),
        ("CVE-2020-14343", "PyYAML", "5.3", "PYTHONPKG", "usr/lib/python3/dist-packages/PyYAML-5.3.egg-info", "5.4",
         apps, "CRITICAL"),
        ("CVE-2021-23337", "lodash", "4.17.20", "NODEPKG", "app/node_modules/lodash/package.json", "4.17.21", apps,
         "HIGH"),
        ("CVE-2023-45133", "@babel/traverse", "7.22.0", "NODEPKG", "app/node_modules/@babel/traverse/package.json",
         "7.23.2", apps, "CRITICAL"),
        ("CVE-2020-7598", "minimist", "0.0.8", "NODEPKG", "app/package-lock.json", "0.2.1", apps, "MEDIUM"),
        ("CVE-2022-32149", "golang.org/x/text", "v0.3.7", "GOBINARY", "usr/local/bin/goapp", "0.3.8", apps, "HIGH"),
        ("CVE-2023-45288", "stdlib", stdlib, "GOBINARY", "usr/local/bin/goapp", "1.99.0", apps, "HIGH"),
        ("CVE-2021-25900", "smallvec", "1.6.0", "CARGO", "srv/rust/Cargo.lock", "1.6.1", apps, "CRITICAL"),
        # An auditable binary: time is behind its fix; its smallvec is the fixed one.
        ("CVE-2020-26235", "time", "0.1.43", "CARGO", "usr/local/bin/rustapp", "0.2.23", apps, "MEDIUM"),
        ("CVE-2021-44228", "org.apache.logging.log4j:log4j-core", "2.14.1", "JAR", "opt/app/app.jar", "2.15.0", apps,
         "CRITICAL"),
    }


def summarized(findings: list[dict]) -> set[tuple]:
    out = set()
    for f in findings:
        details = f["packageVulnerabilityDetails"]
        (p,) = details["vulnerablePackages"]
        out.add((details["vulnerabilityId"], p["name"], p["version"], p["packageManager"], p.get("filePath"),
                 p["fixedInVersion"], p.get("sourceLayerHash"), f["severity"]))
    return out


def severity_counts(expected: set[tuple]) -> dict:
    counts: dict = {}
    for e in expected:
        counts[e[-1]] = counts.get(e[-1], 0) + 1
    return counts


# ============================================================================ tests


def test_enhanced_scanning_reads_os_and_language_packages(berth, ecr, reg, tmp_path):
    import_all(berth, tmp_path, debian=[OPENSSL_DSA], pypi=PYPI, npm=NPM, go=GO, crates=CRATES, maven=MAVEN)
    base = debian_layer([BASE_FILES, LIBSSL3, OPENSSL])
    upper, go_version = language_layers(tmp_path)
    image = [base, *upper]

    # BASIC (ECR's default) reads the OS's packages only.
    ecr.create_repository(repositoryName="apps")
    basic = push_layers(reg, "apps", image, tag="basic")
    found = scan(ecr, "apps", basic)
    assert found["imageScanStatus"]["status"] == "COMPLETE"
    assert "enhancedFindings" not in found["imageScanFindings"]
    assert {(f["name"], [a["value"] for a in f["attributes"] if a["key"] == "package_name"][0])
            for f in all_findings(ecr, "apps", basic)} == {("CVE-2024-0727", "libssl3"), ("CVE-2024-0727", "openssl")}

    # ENHANCED: the push is scanned by the rule, with no StartImageScan.
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[rule("SCAN_ON_PUSH", "apps")])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    digest = push_layers(reg, "apps", image, tag="enhanced")
    found = wait_for_scan(ecr, "apps", digest)
    assert found["imageScanStatus"] == {"status": "ACTIVE", "description": ON_PUSH}
    expected = expected_enhanced(image, go_version)
    got = enhanced_findings(ecr, "apps", digest, page_size=4)
    assert summarized(got) == expected
    assert len(got) == len(expected)
    result = found["imageScanFindings"]
    assert result["findingSeverityCounts"] == severity_counts(expected)
    assert result["vulnerabilitySourceUpdatedAt"] == ts(NEWEST)
    severities = [f["severity"] for f in got]
    order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED"]
    assert severities == sorted(severities, key=order.index)

    account = ecr.describe_registry()["registryId"]
    log4j = next(f for f in got if f["packageVulnerabilityDetails"]["vulnerabilityId"] == "CVE-2021-44228")
    assert log4j["title"] == "CVE-2021-44228 - org.apache.logging.log4j:log4j-core"
    assert log4j["description"] == "Remote code injection in Log4j"
    assert (log4j["type"], log4j["status"], log4j["fixAvailable"]) == ("PACKAGE_VULNERABILITY", "ACTIVE", "YES")
    assert log4j["awsAccountId"] == account
    assert log4j["findingArn"].startswith(f"arn:aws:inspector2:us-east-1:{account}:finding/")
    assert log4j["score"] == 9.8
    assert log4j["scoreDetails"]["cvss"]["scoringVector"] == V98
    assert log4j["packageVulnerabilityDetails"]["cvss"][0]["baseScore"] == 9.8
    assert log4j["packageVulnerabilityDetails"]["source"] == "GITHUB"
    assert log4j["remediation"]["recommendation"]["text"] == \
        "Upgrade org.apache.logging.log4j:log4j-core to 2.15.0 or later."
    (resource,) = log4j["resources"]
    assert resource["type"] == "AWS_ECR_CONTAINER_IMAGE"
    image_details = resource["details"]["awsEcrContainerImage"]
    assert (image_details["repositoryName"], image_details["imageHash"], image_details["registry"]) == \
        ("apps", digest, account)
    assert log4j["firstObservedAt"] >= before
    assert log4j["firstObservedAt"] <= log4j["lastObservedAt"]

    detail = ecr.describe_images(repositoryName="apps", imageIds=[{"imageDigest": digest}])["imageDetails"][0]
    assert detail["imageScanStatus"] == {"status": "ACTIVE", "description": ON_PUSH}
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == severity_counts(expected)


def test_a_refresh_rescans_continuously_monitored_images(berth, ecr, reg, tmp_path):
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[
        rule("SCAN_ON_PUSH", "pushed"), rule("CONTINUOUS_SCAN", "watched")])
    (tmp_path / "v1").mkdir()
    import_all(berth, tmp_path / "v1", pypi=PYPI[:1])
    packages = layer(tree({
        f"{PY}/Jinja2-2.10.dist-info/METADATA": python_metadata("Jinja2", "2.10"),
        f"{PY}/PyYAML-5.3.dist-info/METADATA": python_metadata("PyYAML", "5.3"),
    }))
    # Created first, so its rescan event comes first: by the time the watched image is
    # rescanned, the pushed one's event has been handled.
    ecr.create_repository(repositoryName="pushed")
    ecr.create_repository(repositoryName="watched")
    digests = {}
    for repo in ("pushed", "watched"):
        digests[repo] = push_layers(reg, repo, [packages], tag="v1")
        found = wait_for_scan(ecr, repo, digests[repo])
        assert found["imageScanStatus"] == {"status": "ACTIVE", "description": ON_PUSH if repo == "pushed" else CONTINUOUS}
        assert [f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in enhanced_findings(ecr, repo, digests[repo])] \
            == ["CVE-2019-10906"]
    (first,) = enhanced_findings(ecr, "watched", digests["watched"])

    # A new dump adds a record for PyYAML: the watched image is matched again, no push.
    (tmp_path / "v2").mkdir()
    import_all(berth, tmp_path / "v2", pypi=PYPI)

    def rescanned():
        out = ecr.describe_image_scan_findings(repositoryName="watched", imageId={"imageDigest": digests["watched"]})
        return out if len(out["imageScanFindings"]["enhancedFindings"]) == 2 else None

    out = wait_until("the watched image's rescan", rescanned, timeout=120)
    assert out["imageScanStatus"] == {"status": "ACTIVE", "description": CONTINUOUS}
    assert out["imageScanFindings"]["vulnerabilitySourceUpdatedAt"] == ts("2024-02-04T00:00:00Z")
    by_id = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f for f in out["imageScanFindings"]["enhancedFindings"]}
    assert set(by_id) == {"CVE-2019-10906", "CVE-2020-14343"}
    assert by_id["CVE-2019-10906"]["firstObservedAt"] == first["firstObservedAt"]
    assert by_id["CVE-2020-14343"]["firstObservedAt"] >= first["firstObservedAt"]
    assert out["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 2}
    # Scanned on push only: what its scan found stays until it is scanned again.
    pushed = enhanced_findings(ecr, "pushed", digests["pushed"])
    assert [f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in pushed] == ["CVE-2019-10906"]


def test_a_go_binary_on_scratch_is_scanned_only_by_enhanced_scanning(berth, ecr, reg, tmp_path):
    import_all(berth, tmp_path, go=GO)
    goapp, go_version = go_binary(tmp_path, {"golang.org/x/text": "v0.3.7", "example.com/fixed": "v1.2.3"})
    scratch = layer([file("app", goapp, mode=0o755),
                     *tree({"node_modules/lodash/package.json": npm_manifest("lodash", "4.17.20")})])
    ecr.create_repository(repositoryName="scratch")

    basic = push_layers(reg, "scratch", [scratch], tag="basic")
    found = scan(ecr, "scratch", basic)
    assert found["imageScanStatus"]["status"] == "UNSUPPORTED_IMAGE"
    assert found["imageScanStatus"]["description"].startswith(UNSUPPORTED_PREFIX)
    assert "os-release" in found["imageScanStatus"]["description"]

    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[rule("CONTINUOUS_SCAN", "*")])
    digest = push_layers(reg, "scratch", [scratch], tag="enhanced")
    found = wait_for_scan(ecr, "scratch", digest)
    status = found["imageScanStatus"]
    assert status["status"] == "ACTIVE"
    # npm's data is not loaded: its packages are named as unchecked, not reported clean.
    assert status["description"].startswith(CONTINUOUS)
    assert "no vulnerability data is loaded for npm" in status["description"]
    got = summarized(enhanced_findings(ecr, "scratch", digest))
    stdlib = go_version.removeprefix("go")
    assert got == {
        ("CVE-2022-32149", "golang.org/x/text", "v0.3.7", "GOBINARY", "app", "0.3.8", scratch.digest, "HIGH"),
        ("CVE-2023-45288", "stdlib", stdlib, "GOBINARY", "app", "1.99.0", scratch.digest, "HIGH"),
    }


def test_a_refresh_rescans_on_the_node_that_took_the_scan_job_over(berth_factory, tmp_path, s3_bucket):
    a, b, key = two_nodes(berth_factory, tmp_path, s3_bucket)
    master = ["--master-key-file", str(key)]
    nodes = {a.pid: a, b.pid: b}
    row = wait_until("a holder of the scan job", lambda: (r := jobs(a, key).get("outbox:scans")) and r["holder"] and r)
    holder = nodes[holder_pid(row)]
    survivor = b if holder is a else a
    ecr = survivor.ecr()
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[rule("CONTINUOUS_SCAN", "watched")])
    (tmp_path / "v1").mkdir()
    import_all(survivor, tmp_path / "v1", extra=master, pypi=PYPI[:1])
    ecr.create_repository(repositoryName="watched")
    packages = layer(tree({f"{PY}/Jinja2-2.10.dist-info/METADATA": python_metadata("Jinja2", "2.10"),
                           f"{PY}/PyYAML-5.3.dist-info/METADATA": python_metadata("PyYAML", "5.3")}))
    digest = push_layers(Registry(survivor.url, auth=survivor.registry_auth()), "watched", [packages], tag="v1")
    assert wait_for_scan(ecr, "watched", digest)["imageScanStatus"]["status"] == "ACTIVE"
    assert len(enhanced_findings(ecr, "watched", digest)) == 1

    holder.kill()
    wait_until("the survivor to take the scan job over",
               lambda: holder_pid(jobs(survivor, key)["outbox:scans"]) == survivor.pid)
    (tmp_path / "v2").mkdir()
    import_all(survivor, tmp_path / "v2", extra=master, pypi=PYPI)
    found = wait_until("the rescan", timeout=120, check=lambda: len(enhanced_findings(ecr, "watched", digest)) == 2 and
                       enhanced_findings(ecr, "watched", digest))
    assert {f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in found} == {"CVE-2019-10906", "CVE-2020-14343"}
