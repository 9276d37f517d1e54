//! Findings in the shape ECR gives them for enhanced scanning (Amazon Inspector's
//! `EnhancedImageScanFinding`): the vulnerable package with its manager, file and
//! layer, the fix, CVSS details and the image as the finding's resource.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::seconds;
use crate::meta::ScanResult;
use crate::scan::PackageKind;
use crate::service::Context;
use crate::vulndb::{Finding, Severity};

/// What a finding is about: the image it was found in.
pub(super) struct Subject<'a> {
    pub ctx: &'a Context,
    pub repository: &'a str,
    pub digest: &'a str,
    pub scan: &'a ScanResult,
}

pub(super) fn finding_json(s: &Subject<'_>, f: &Finding) -> Value {
    let account = s.ctx.registry.account_id.to_string();
    let region = s.ctx.registry.region.to_string();
    let seen = seconds(s.scan.at);
    let first = seconds(f.first_observed_ms.unwrap_or(s.scan.at));
    let (version, epoch, release) = split_version(f);
    let mut package = json!({
        "name": f.package_name,
        "version": version,
        "epoch": epoch,
        "release": release,
        "packageManager": package_manager(f.package_kind),
        "fixedInVersion": f.fixed_in.as_deref().unwrap_or("NotAvailable"),
    });
    if let Some(path) = &f.file_path {
        package["filePath"] = json!(path);
    }
    if let Some(layer) = &f.layer {
        package["sourceLayerHash"] = json!(layer);
    }
    let mut details = json!({
        "vulnerabilityId": f.name,
        "source": source(&f.advisory),
        "sourceUrl": f.uri,
        "referenceUrls": [f.uri],
        "relatedVulnerabilities": [],
        "vendorSeverity": f.severity.as_str(),
        "vulnerablePackages": [package],
        "cvss": [],
    });
    let mut finding = json!({
        "awsAccountId": account,
        "description": f.description,
        "findingArn": format!("arn:aws:inspector2:{region}:{account}:finding/{}", finding_id(s, f)),
        "firstObservedAt": first,
        "lastObservedAt": seen,
        "updatedAt": seen,
        "packageVulnerabilityDetails": details.clone(),
        "remediation": { "recommendation": { "text": remediation(f) } },
        "resources": [{
            "id": format!("arn:aws:ecr:{region}:{account}:repository/{}/{}", s.repository, s.digest),
            "type": "AWS_ECR_CONTAINER_IMAGE",
            "details": { "awsEcrContainerImage": {
                "registry": account,
                "repositoryName": s.repository,
                "imageHash": s.digest,
            }},
        }],
        "severity": severity(f.severity),
        "status": "ACTIVE",
        "title": format!("{} - {}", f.name, f.package_name),
        "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": if f.fixed_in.is_some() { "YES" } else { "NO" },
    });
    if let (Some(vector), Some(score)) = (&f.cvss3_vector, f.cvss3_score) {
        let score = f64::from(score) / 10.0;
        let version = vector
            .strip_prefix("CVSS:")
            .and_then(|v| v.split('/').next())
            .unwrap_or("3.1");
        details["cvss"] = json!([{
            "baseScore": score, "scoringVector": vector, "source": source(&f.advisory), "version": version,
        }]);
        finding["packageVulnerabilityDetails"] = details;
        finding["score"] = json!(score);
        finding["scoreDetails"] = json!({ "cvss": {
            "score": score, "scoreSource": source(&f.advisory), "scoringVector": vector,
            "version": version, "adjustments": [],
        }});
    }
    finding
}

/// Inspector's name for the package manager that installed a package.
fn package_manager(kind: Option<PackageKind>) -> &'static str {
    match kind {
        None | Some(PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm) => "OS",
        Some(PackageKind::Python) => "PYTHONPKG",
        Some(PackageKind::Npm) => "NODEPKG",
        Some(PackageKind::Go) => "GOBINARY",
        Some(PackageKind::Cargo) => "CARGO",
        Some(PackageKind::Maven) => "JAR",
    }
}

/// Inspector's severities: an unrated finding is UNTRIAGED.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Undefined => "UNTRIAGED",
        other => other.as_str(),
    }
}

/// Where the record came from, by its id's prefix.
fn source(advisory: &str) -> &'static str {
    let prefix = advisory.split('-').next().unwrap_or(advisory);
    match prefix {
        "GHSA" => "GITHUB",
        "DSA" | "DLA" | "DTSA" | "DEBIAN" => "DEBIAN_CVE",
        "USN" | "UBUNTU" => "UBUNTU_CVE",
        "ALPINE" => "ALPINE_SECDB",
        "RHSA" | "RHBA" | "RHEA" => "REDHAT_CVE",
        "GO" => "GO_VULNDB",
        "RUSTSEC" => "RUSTSEC",
        "PYSEC" => "PYPA",
        "CVE" => "NVD",
        _ => "OSV",
    }
}

/// An rpm version as Inspector splits it (epoch, version, release); others whole.
fn split_version(f: &Finding) -> (String, u32, String) {
    let v = f.package_version.as_str();
    if f.package_kind != Some(PackageKind::Rpm) {
        return (v.to_owned(), 0, String::new());
    }
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (e.parse().unwrap_or(0), rest),
        None => (0, v),
    };
    let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (version.to_owned(), epoch, release.to_owned())
}

fn remediation(f: &Finding) -> String {
    match &f.fixed_in {
        Some(fixed) => format!("Upgrade {} to {fixed} or later.", f.package_name),
        None => "None Provided".to_owned(),
    }
}

/// A stable id for one finding of one image.
fn finding_id(s: &Subject<'_>, f: &Finding) -> String {
    let mut h = Sha256::new();
    for part in [s.repository, s.digest, &f.name, &f.package_name] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}
