//! OSV records (https://ossf.github.io/osv-schema/), read once into what Berth keeps:
//! the finding's name, text, link and severity, and per affected package the ranges.

use serde::Deserialize;

use super::cvss;
use super::ecosystem;
use super::severity::Severity;
use super::Record;

/// The parts of an OSV record Berth reads.
#[derive(Debug, Deserialize)]
struct Raw {
    id: String,
    modified: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    summary: Option<String>,
    details: Option<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    #[serde(default)]
    references: Vec<RawReference>,
    database_specific: Option<serde_json::Value>,
    /// Withdrawn records stay in the dumps; they match nothing.
    withdrawn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Debug, Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    ecosystem_specific: Option<serde_json::Value>,
    database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawReference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: String,
}

/// One range of an affected package, as OSV writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event of a range: exactly one of the members is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Which versions of one package a record affects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub struct AffectedSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// An affected package under Berth's ecosystem key (`Debian:12`, `Alpine:v3.18`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    pub ecosystem: String,
    pub package: String,
    pub spec: AffectedSpec,
}

/// A record as Berth keeps it: what findings show, and what it affects.
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    pub record: Record,
    /// `modified`, in milliseconds since the epoch.
    pub modified_ms: i64,
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cvss3 {
    pub vector: String,
    /// The base score in tenths (98 is 9.8).
    pub score: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OsvError(String);

/// Parse one record; `None` for a withdrawn one.
pub fn parse(json: &[u8]) -> Result<Option<Advisory>, OsvError> {
    let raw: Raw =
        serde_json::from_slice(json).map_err(|e| OsvError(format!("not an OSV record: {e}")))?;
    if raw.withdrawn.is_some() {
        return Ok(None);
    }
    let modified_ms = raw
        .modified
        .as_deref()
        .and_then(parse_time_ms)
        .ok_or_else(|| OsvError(format!("{}: missing or invalid `modified`", raw.id)))?;
    let name = finding_name(&raw);
    let cvss3 = raw
        .severity
        .iter()
        .chain(raw.affected.iter().flat_map(|a| &a.severity))
        .find(|s| s.kind == "CVSS_V3")
        .and_then(|s| {
            Some(Cvss3 {
                score: cvss::base_score(&s.score).ok()?.tenths(),
                vector: s.score.clone(),
            })
        });
    let severity = match &cvss3 {
        Some(c) => Severity::from_tenths(c.score),
        None => word_severity(&raw).unwrap_or(Severity::Undefined),
    };
    let description = raw
        .summary
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| raw.details.clone())
        .unwrap_or_default();
    // PostgreSQL's TEXT cannot hold NUL; control characters mean nothing in a finding.
    let description: String = description
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let description = clip(description.trim(), 4000);
    let uri = raw
        .references
        .iter()
        .find(|r| r.kind.as_deref() == Some("ADVISORY"))
        .or_else(|| raw.references.first())
        .map(|r| r.url.clone())
        .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", raw.id));
    let affected = raw
        .affected
        .into_iter()
        .filter_map(|a| {
            let p = a
                .package
                .filter(|p| !p.name.contains('\0') && !p.ecosystem.contains('\0'))?;
            let ranges: Vec<Range> = a.ranges.into_iter().filter(|r| r.kind != "GIT").collect();
            let ecosystem = ecosystem::key(&p.ecosystem)?;
            Some(Affected {
                package: ecosystem::package_name(&ecosystem, &p.name),
                ecosystem,
                spec: AffectedSpec {
                    ranges,
                    versions: a.versions,
                },
            })
        })
        .collect();
    Ok(Some(Advisory {
        record: Record {
            id: raw.id,
            name,
            description,
            uri,
            severity,
            cvss3,
        },
        modified_ms,
        affected,
    }))
}

/// The CVE a record is about, else its own id (GHSA-..., DSA-..., ALSA-...).
fn finding_name(raw: &Raw) -> String {
    if raw.id.starts_with("CVE-") {
        return raw.id.clone();
    }
    // DEBIAN-CVE-2024-1234, UBUNTU-CVE-..., ALPINE-CVE-...
    if let Some(at) = raw.id.find("-CVE-") {
        return raw.id[at + 1..].to_owned();
    }
    raw.aliases
        .iter()
        .chain(&raw.upstream)
        .find(|a| a.starts_with("CVE-"))
        .cloned()
        .unwrap_or_else(|| raw.id.clone())
}

/// A severity word: Ubuntu's severity type, or a database's own (GHSA, Red Hat...).
fn word_severity(raw: &Raw) -> Option<Severity> {
    let from_json = |v: &Option<serde_json::Value>| {
        v.as_ref()?
            .get("severity")?
            .as_str()
            .and_then(Severity::parse_word)
    };
    raw.severity
        .iter()
        .chain(raw.affected.iter().flat_map(|a| &a.severity))
        .filter(|s| s.kind == "Ubuntu")
        .find_map(|s| Severity::parse_word(&s.score))
        .or_else(|| from_json(&raw.database_specific))
        .or_else(|| {
            raw.affected
                .iter()
                .find_map(|a| from_json(&a.ecosystem_specific))
        })
        .or_else(|| {
            raw.affected
                .iter()
                .find_map(|a| from_json(&a.database_specific))
        })
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// RFC 3339 (`2024-01-02T03:04:05Z`, fractions and offsets allowed) to milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cve_severity_and_affected_packages() {
        let rec = br#"{"id":"DEBIAN-CVE-2023-0286","modified":"2024-05-01T10:00:00Z",
            "summary":"X.400 address type confusion",
            "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H"}],
            "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
                         "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.8-1"}]}]},
                        {"package":{"ecosystem":"Ubuntu:Pro:22.04:LTS","name":"openssl"}}]}"#;
        let a = parse(rec).expect("valid").expect("not withdrawn");
        assert_eq!(a.record.name, "CVE-2023-0286");
        assert_eq!(a.record.severity, Severity::Critical);
        assert_eq!(a.record.cvss3.as_ref().map(|c| c.score), Some(91));
        assert_eq!(a.affected.len(), 1, "Ubuntu Pro is not matched");
        assert_eq!(a.affected[0].ecosystem, "Debian:12");
        assert_eq!(a.modified_ms, 1_714_557_600_000);
        assert_eq!(
            a.record.uri,
            "https://osv.dev/vulnerability/DEBIAN-CVE-2023-0286"
        );
        let withdrawn =
            br#"{"id":"X","modified":"2024-05-01T10:00:00Z","withdrawn":"2024-05-02T00:00:00Z"}"#;
        assert!(parse(withdrawn).expect("valid").is_none());
        assert!(parse(b"{}").is_err());
    }
}
