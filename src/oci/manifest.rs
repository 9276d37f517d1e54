//! Manifest media types, parsing and structural validation.
//!
//! The registry stores manifests as the exact bytes it received; this module only reads
//! them to learn what they reference (blobs, child manifests, subject) and to reject what
//! is malformed. It never re-serialises.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::digest::Digest;

pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Largest manifest accepted (ECR's limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    DockerSchema1,
    DockerSchema2,
    DockerList,
    OciManifest,
    OciIndex,
}

impl ManifestKind {
    pub fn from_media_type(mt: &str) -> Option<ManifestKind> {
        match mt {
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Some(ManifestKind::DockerSchema1),
            DOCKER_SCHEMA2 => Some(ManifestKind::DockerSchema2),
            DOCKER_LIST => Some(ManifestKind::DockerList),
            OCI_MANIFEST => Some(ManifestKind::OciManifest),
            OCI_INDEX => Some(ManifestKind::OciIndex),
            _ => None,
        }
    }

    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::DockerList | ManifestKind::OciIndex)
    }
}

/// Descriptor fields Berth reads; unknown fields are ignored (they stay in the stored bytes).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
    fs_layers: Option<Vec<FsLayer>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: String,
}

/// What the registry learns from a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    pub kind: ManifestKind,
    /// Sum of the layers' descriptor sizes (what ECR reports as the image size).
    pub layers_size: i64,
    /// The config descriptor's media type (ECR's `artifactMediaType`).
    pub config_media_type: Option<String>,
    /// The media type to store and serve (the client's spelling).
    pub media_type: String,
    /// Blobs that must be present in the repository (config and layers).
    pub blobs: Vec<Digest>,
    /// Child manifests that must be present (index and list entries).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest without one, its config media type.
    pub artifact_type: Option<String>,
    /// `annotations` re-encoded as a JSON object, for referrers listings.
    pub annotations: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidManifest(pub String);

fn invalid(msg: impl Into<String>) -> InvalidManifest {
    InvalidManifest(msg.into())
}

/// Strip parameters (`; charset=...`) and whitespace from a Content-Type value.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parse and validate a manifest. `content_type` is the request's Content-Type, if any.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, InvalidManifest> {
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let header = content_type.map(essence).filter(|ct| {
        !ct.is_empty() && !matches!(*ct, "application/json" | "application/octet-stream")
    });
    let media_type = match (header, raw.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(invalid(format!(
                "manifest media type '{b}' does not match Content-Type '{h}'"
            )))
        }
        (Some(h), _) => h.to_owned(),
        (None, Some(b)) => b.to_owned(),
        (None, None) if raw.schema_version == Some(1) => DOCKER_SCHEMA1_SIGNED.to_owned(),
        (None, None) => return Err(invalid("manifest media type is missing")),
    };
    if let Some(t) = &raw.artifact_type {
        printable(t, "artifactType")?;
    }
    if let Some(t) = raw.config.as_ref().and_then(|c| c.media_type.as_ref()) {
        printable(t, "config mediaType")?;
    }
    let kind = ManifestKind::from_media_type(&media_type)
        .ok_or_else(|| invalid(format!("unsupported manifest media type '{media_type}'")))?;
    match kind {
        ManifestKind::DockerSchema1 => parse_schema1(raw, media_type),
        ManifestKind::DockerSchema2 | ManifestKind::OciManifest => {
            parse_image(raw, kind, media_type)
        }
        ManifestKind::DockerList | ManifestKind::OciIndex => parse_index(raw, kind, media_type),
    }
}

/// Drop repeated digests, keeping first occurrences in order.
fn dedup(digests: &mut Vec<Digest>) {
    let mut seen = std::collections::HashSet::new();
    digests.retain(|d| seen.insert(d.clone()));
}

/// Text Berth stores and serves back in headers or listings must be printable: control
/// characters (NUL above all) are refused rather than passed to the database.
fn printable(value: &str, what: &str) -> Result<(), InvalidManifest> {
    if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control) {
        return Err(invalid(format!("{what} is not a valid media type")));
    }
    Ok(())
}

fn require_schema2(raw: &RawManifest) -> Result<(), InvalidManifest> {
    match raw.schema_version {
        Some(2) => Ok(()),
        Some(v) => Err(invalid(format!("schemaVersion must be 2, got {v}"))),
        None => Err(invalid("schemaVersion is missing")),
    }
}

fn descriptor_digest(d: &RawDescriptor, what: &str) -> Result<Digest, InvalidManifest> {
    if d.size < 0 {
        return Err(invalid(format!("{what} has a negative size")));
    }
    d.digest
        .parse()
        .map_err(|_| invalid(format!("{what} has an invalid digest '{}'", d.digest)))
}

fn annotations_json(raw: &RawManifest) -> Option<String> {
    raw.annotations
        .as_ref()
        .filter(|a| !a.is_empty())
        .and_then(|a| serde_json::to_string(a).ok())
}

fn subject(raw: &RawManifest) -> Result<Option<Digest>, InvalidManifest> {
    raw.subject
        .as_ref()
        .map(|s| descriptor_digest(s, "subject"))
        .transpose()
}

/// Layers a registry must not require: foreign (non-distributable) layers live elsewhere.
fn is_foreign(d: &RawDescriptor) -> bool {
    !d.urls.is_empty()
        || d.media_type
            .as_deref()
            .is_some_and(|m| m.contains("foreign") || m.contains("nondistributable"))
}

fn parse_image(
    raw: RawManifest,
    kind: ManifestKind,
    media_type: String,
) -> Result<ParsedManifest, InvalidManifest> {
    require_schema2(&raw)?;
    let config = raw
        .config
        .as_ref()
        .ok_or_else(|| invalid("config is missing"))?;
    if config.media_type.is_none() {
        return Err(invalid("config mediaType is missing"));
    }
    let layers = raw
        .layers
        .as_ref()
        .ok_or_else(|| invalid("layers is missing"))?;
    let mut blobs = vec![descriptor_digest(config, "config")?];
    for (i, layer) in layers.iter().enumerate() {
        let d = descriptor_digest(layer, &format!("layers[{i}]"))?;
        if !is_foreign(layer) {
            blobs.push(d);
        }
    }
    dedup(&mut blobs);
    let artifact_type = match kind {
        ManifestKind::OciManifest => raw.artifact_type.clone().or(config.media_type.clone()),
        _ => None,
    };
    // Each size is checked non-negative, but their sum can still overflow.
    let layers_size = layers
        .iter()
        .try_fold(0i64, |total, l| total.checked_add(l.size))
        .ok_or_else(|| invalid("the layers' sizes add up to more than 2^63 - 1 bytes"))?;
    Ok(ParsedManifest {
        kind,
        layers_size,
        config_media_type: config.media_type.clone(),
        media_type,
        blobs,
        manifests: Vec::new(),
        subject: subject(&raw)?,
        artifact_type,
        annotations: annotations_json(&raw),
    })
}

fn parse_index(
    raw: RawManifest,
    kind: ManifestKind,
    media_type: String,
) -> Result<ParsedManifest, InvalidManifest> {
    require_schema2(&raw)?;
    let entries = raw
        .manifests
        .as_ref()
        .ok_or_else(|| invalid("manifests is missing"))?;
    let mut manifests = entries
        .iter()
        .enumerate()
        .map(|(i, m)| descriptor_digest(m, &format!("manifests[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    dedup(&mut manifests);
    Ok(ParsedManifest {
        kind,
        layers_size: 0,
        config_media_type: None,
        media_type,
        blobs: Vec::new(),
        manifests,
        subject: subject(&raw)?,
        artifact_type: raw.artifact_type.clone(),
        annotations: annotations_json(&raw),
    })
}

fn parse_schema1(raw: RawManifest, media_type: String) -> Result<ParsedManifest, InvalidManifest> {
    if raw.schema_version != Some(1) {
        return Err(invalid("schemaVersion must be 1"));
    }
    let layers = raw
        .fs_layers
        .as_ref()
        .ok_or_else(|| invalid("fsLayers is missing"))?;
    let mut blobs: Vec<Digest> = Vec::new();
    for l in layers {
        let d: Digest = l
            .blob_sum
            .parse()
            .map_err(|_| invalid(format!("invalid blobSum '{}'", l.blob_sum)))?;
        if !blobs.contains(&d) {
            blobs.push(d);
        }
    }
    Ok(ParsedManifest {
        kind: ManifestKind::DockerSchema1,
        layers_size: 0,
        config_media_type: None,
        media_type,
        blobs,
        manifests: Vec::new(),
        subject: None,
        artifact_type: None,
        annotations: None,
    })
}

/// Media types listed in the request's `Accept` headers (several headers, comma lists,
/// parameters such as `q=` dropped). Empty means "anything".
pub fn accepted_types<'a>(accept_headers: impl Iterator<Item = &'a str>) -> Vec<String> {
    accept_headers
        .flat_map(|h| h.split(','))
        .map(|t| essence(t).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a stored manifest of `media_type` may be served to a client that accepts `accepted`.
pub fn is_acceptable(media_type: &str, accepted: &[String]) -> bool {
    if accepted.is_empty() || accepted.iter().any(|a| a == "*/*" || a == media_type) {
        return true;
    }
    // Clients that ask for schema1 accept either spelling of it.
    ManifestKind::from_media_type(media_type) == Some(ManifestKind::DockerSchema1)
        && accepted
            .iter()
            .any(|a| a == DOCKER_SCHEMA1 || a == DOCKER_SCHEMA1_SIGNED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::sha256_of(&[n]).to_string()
    }

    fn image(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]}}"#,
            d(1),
            d(2)
        )
    }

    #[test]
    fn image_manifest_references_config_and_layers() {
        let m = parse(image(OCI_MANIFEST).as_bytes(), Some(OCI_MANIFEST)).expect("valid");
        assert_eq!(m.kind, ManifestKind::OciManifest);
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn media_type_from_header_or_body() {
        let body = image(DOCKER_SCHEMA2);
        assert!(parse(body.as_bytes(), None).is_ok());
        assert!(parse(body.as_bytes(), Some("application/json")).is_ok());
        assert!(
            parse(body.as_bytes(), Some(OCI_MANIFEST)).is_err(),
            "mismatch"
        );
        let no_type = body.replace(&format!(r#""mediaType":"{DOCKER_SCHEMA2}","#), "");
        assert!(parse(no_type.as_bytes(), None).is_err());
        assert!(parse(no_type.as_bytes(), Some(DOCKER_SCHEMA2)).is_ok());
        assert!(parse(no_type.as_bytes(), Some("text/plain")).is_err());
    }

    #[test]
    fn index_references_children_and_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","artifactType":"x/y","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}},"annotations":{{"a":"b"}}}}"#,
            d(3),
            d(4)
        );
        let m = parse(body.as_bytes(), Some(OCI_INDEX)).expect("valid");
        assert_eq!(m.manifests, vec![d(3).parse().expect("digest")]);
        assert_eq!(m.subject, Some(d(4).parse().expect("digest")));
        assert_eq!(m.artifact_type.as_deref(), Some("x/y"));
        assert_eq!(m.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn rejects_malformed() {
        for (body, ct) in [
            ("not json", Some(OCI_MANIFEST)),
            ("{}", Some(OCI_MANIFEST)),
            (r#"{"schemaVersion":2}"#, Some(OCI_MANIFEST)),
            (
                r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:1","size":1}]}"#,
                Some(OCI_INDEX),
            ),
            (r#"{"schemaVersion":3,"manifests":[]}"#, Some(OCI_INDEX)),
            (
                r#"{"schemaVersion":2,"manifests":[]}"#,
                Some("application/vnd.unknown+json"),
            ),
        ] {
            assert!(parse(body.as_bytes(), ct).is_err(), "{body}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let acc = accepted_types(
            [
                "application/json, application/vnd.oci.image.manifest.v1+json;q=0.9",
                DOCKER_SCHEMA2,
            ]
            .into_iter(),
        );
        assert!(is_acceptable(OCI_MANIFEST, &acc));
        assert!(is_acceptable(DOCKER_SCHEMA2, &acc));
        assert!(!is_acceptable(OCI_INDEX, &acc));
        assert!(is_acceptable(OCI_INDEX, &[]));
        assert!(is_acceptable(OCI_INDEX, &["*/*".to_owned()]));
    }
}
