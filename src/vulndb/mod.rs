//! Vulnerability data and matching: OSV records (osv.rs) imported offline
//! (import.rs), under one key per release (ecosystem.rs), matched against what an
//! image has installed (matching.rs) by each package manager's own version ordering
//! (version/), with severities from CVSS (cvss.rs, severity.rs).

pub mod cvss;
pub mod ecosystem;
pub mod import;
pub mod matching;
pub mod osv;
pub mod severity;
pub mod version;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scan::{Package, PackageKind};
pub use osv::{AffectedSpec, Cvss3};
pub use severity::Severity;
use version::Scheme;

/// A stored record, as findings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub description: String,
    pub uri: String,
    pub severity: Severity,
    pub cvss3: Option<Cvss3>,
}

/// A record that names a package of the image's ecosystem, with its ranges.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub package: String,
    pub spec: AffectedSpec,
    pub record: Record,
}

/// One vulnerability in one installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub name: String,
    pub description: String,
    pub uri: String,
    pub severity: Severity,
    /// The installed (binary) package and its version.
    pub package_name: String,
    pub package_version: String,
    pub fixed_in: Option<String>,
    pub cvss3_vector: Option<String>,
    /// Tenths: 98 is 9.8.
    pub cvss3_score: Option<u8>,
    /// The OSV record that reported it.
    pub advisory: String,
    /// Which package manager installed the package.
    #[serde(default)]
    pub package_kind: Option<PackageKind>,
    /// The file that names the package (a database, a manifest, a binary).
    #[serde(default)]
    pub file_path: Option<String>,
    /// The digest of the layer that wrote that file.
    #[serde(default)]
    pub layer: Option<String>,
    /// When a scan of this image first reported it, in milliseconds.
    #[serde(default)]
    pub first_observed_ms: Option<i64>,
}

/// The name advisories of a package's ecosystem use for it: distributions name the
/// source package (Debian, Ubuntu, Alpine); Red Hat names binary rpms; PyPI compares
/// normalized names; the other languages' names are as written.
pub fn advisory_name(p: &Package) -> std::borrow::Cow<'_, str> {
    match p.kind {
        PackageKind::Dpkg | PackageKind::Apk => p.source_name().into(),
        PackageKind::Python => crate::scan::python::normalize(&p.name).into(),
        _ => p.name.as_str().into(),
    }
}

/// The version advisories compare: the source's, where dpkg says it differs.
fn advisory_version(p: &Package) -> &str {
    match p.kind {
        PackageKind::Dpkg => p.source_version(),
        _ => &p.version,
    }
}

/// The findings for `packages` among `candidates` (of the packages' one ecosystem), in
/// ECR's order: most severe first, then by name. `layers` are the image's layer
/// digests, by index.
pub fn findings(
    packages: &[&Package],
    candidates: &[Candidate],
    layers: &[String],
) -> Vec<Finding> {
    let mut by_name: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        by_name.entry(c.package.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    for p in packages {
        let scheme = Scheme::of(p.kind);
        for c in by_name.get(advisory_name(p).as_ref()).into_iter().flatten() {
            let Some(hit) = matching::affects(&c.spec, advisory_version(p), scheme) else {
                continue;
            };
            let r = &c.record;
            out.push(Finding {
                name: r.name.clone(),
                description: r.description.clone(),
                uri: r.uri.clone(),
                severity: r.severity,
                package_name: p.name.clone(),
                package_version: p.version.clone(),
                fixed_in: hit.fixed_in,
                cvss3_vector: r.cvss3.as_ref().map(|c| c.vector.clone()),
                cvss3_score: r.cvss3.as_ref().map(|c| c.score),
                advisory: r.id.clone(),
                package_kind: Some(p.kind),
                file_path: p.location.as_ref().map(|l| l.path.clone()),
                layer: p
                    .location
                    .as_ref()
                    .and_then(|l| layers.get(l.layer).cloned()),
                first_observed_ms: None,
            });
        }
    }
    merge(out)
}

/// Findings of several ecosystems as one list: one per CVE and package, in ECR's
/// order (most severe first, then by name).
pub fn merge(out: Vec<Finding>) -> Vec<Finding> {
    // Two records about one CVE (a DSA and the DEBIAN-CVE) are one finding: the most
    // severe rating wins, then the one with a fix named.
    let mut unique: BTreeMap<(String, String), Finding> = BTreeMap::new();
    for f in out {
        let key = (f.name.clone(), f.package_name.clone());
        match unique.get(&key) {
            Some(kept)
                if (kept.severity, kept.fixed_in.is_some())
                    >= (f.severity, f.fixed_in.is_some()) => {}
            _ => {
                unique.insert(key, f);
            }
        }
    }
    let mut out: Vec<Finding> = unique.into_values().collect();
    out.sort_by(|a, b| {
        (b.severity, &a.name, &a.package_name).cmp(&(a.severity, &b.name, &b.package_name))
    });
    out
}

/// How many findings of each severity.
pub fn severity_counts(findings: &[Finding]) -> BTreeMap<Severity, u32> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    counts
}
