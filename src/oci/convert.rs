//! Converting an image manifest between Docker schema 2 and the OCI image manifest, for
//! a client that accepts only the other one (ECR's rule, spec §5.6: only when pulling by
//! tag, and the converted manifest has its own digest).
//!
//! Only faithful conversions are made: a plain image whose config and layers all have a
//! counterpart in the other format. An OCI manifest that uses what Docker schema 2 cannot
//! say (`subject`, `artifactType`, annotations, zstd layers, a non-image config) is not
//! converted, and the client gets "not acceptable" as before.

use serde_json::{Map, Value};

use super::manifest::{DOCKER_SCHEMA2, OCI_MANIFEST};

/// Config and layer media types with a counterpart: (Docker schema 2, OCI).
const PAIRS: &[(&str, &str)] = &[
    (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
];

/// Direction of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    DockerToOci,
    OciToDocker,
}

impl Direction {
    fn between(from: &str, to: &str) -> Option<Direction> {
        match (from, to) {
            (DOCKER_SCHEMA2, OCI_MANIFEST) => Some(Direction::DockerToOci),
            (OCI_MANIFEST, DOCKER_SCHEMA2) => Some(Direction::OciToDocker),
            _ => None,
        }
    }

    fn target(self) -> &'static str {
        match self {
            Direction::DockerToOci => OCI_MANIFEST,
            Direction::OciToDocker => DOCKER_SCHEMA2,
        }
    }

    fn map(self, media_type: &str) -> Option<&'static str> {
        PAIRS.iter().find_map(|&(docker, oci)| match self {
            Direction::DockerToOci if media_type == docker => Some(oci),
            Direction::OciToDocker if media_type == oci => Some(docker),
            _ => None,
        })
    }
}

/// The first type in `accepted` that a manifest of `media_type` can be converted to.
pub fn target_for(media_type: &str, accepted: &[String]) -> Option<&'static str> {
    accepted
        .iter()
        .find_map(|a| Direction::between(media_type, a).map(Direction::target))
}

/// `body` (of `media_type`) converted to `target`, or `None` if that cannot be done
/// faithfully. The output is compact JSON; its digest differs from the stored one.
pub fn convert(body: &[u8], media_type: &str, target: &str) -> Option<Vec<u8>> {
    let direction = Direction::between(media_type, target)?;
    let Value::Object(mut manifest) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    if manifest.get("schemaVersion") != Some(&Value::from(2)) {
        return None;
    }
    // What schema 2 cannot express.
    if ["subject", "artifactType", "annotations"]
        .iter()
        .any(|k| manifest.contains_key(*k))
    {
        return None;
    }
    convert_descriptor(manifest.get_mut("config")?, direction)?;
    for layer in manifest.get_mut("layers")?.as_array_mut()? {
        convert_descriptor(layer, direction)?;
    }
    manifest.insert("mediaType".into(), Value::from(direction.target()));
    serde_json::to_vec(&Value::Object(manifest)).ok()
}

fn convert_descriptor(descriptor: &mut Value, direction: Direction) -> Option<()> {
    let d: &mut Map<String, Value> = descriptor.as_object_mut()?;
    if d.contains_key("annotations") || d.contains_key("artifactType") {
        return None;
    }
    let mapped = direction.map(d.get("mediaType")?.as_str()?)?;
    d.insert("mediaType".into(), Value::from(mapped));
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"sha256:aa"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,"digest":"sha256:bb"}]}"#;

    fn media_types(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("json");
        let mut out = vec![v["mediaType"].as_str().unwrap_or("").to_owned()];
        out.push(v["config"]["mediaType"].as_str().unwrap_or("").to_owned());
        for l in v["layers"].as_array().into_iter().flatten() {
            out.push(l["mediaType"].as_str().unwrap_or("").to_owned());
        }
        out
    }

    #[test]
    fn docker_to_oci_and_back() {
        let oci = convert(DOCKER.as_bytes(), DOCKER_SCHEMA2, OCI_MANIFEST).expect("converts");
        assert_eq!(
            media_types(&oci),
            [
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip"
            ]
        );
        let back = convert(&oci, OCI_MANIFEST, DOCKER_SCHEMA2).expect("converts back");
        assert_eq!(media_types(&back), media_types(DOCKER.as_bytes()));
        let v: Value = serde_json::from_slice(&back).expect("json");
        assert_eq!(
            v["layers"][0]["digest"], "sha256:bb",
            "descriptors keep digest and size"
        );
        assert_eq!(v["layers"][0]["size"], 9);
    }

    #[test]
    fn what_schema2_cannot_say_is_not_converted() {
        let oci = String::from_utf8(
            convert(DOCKER.as_bytes(), DOCKER_SCHEMA2, OCI_MANIFEST).expect("converts"),
        )
        .expect("utf-8");
        let with_subject = oci.replacen(
            "{\"config\"",
            "{\"subject\":{\"mediaType\":\"x\",\"digest\":\"sha256:cc\",\"size\":1},\"config\"",
            1,
        );
        assert_ne!(with_subject, oci);
        assert!(convert(with_subject.as_bytes(), OCI_MANIFEST, DOCKER_SCHEMA2).is_none());
        let zstd = oci.replace("tar+gzip", "tar+zstd");
        assert!(convert(zstd.as_bytes(), OCI_MANIFEST, DOCKER_SCHEMA2).is_none());
        assert!(convert(b"not json", DOCKER_SCHEMA2, OCI_MANIFEST).is_none());
        assert!(convert(DOCKER.as_bytes(), DOCKER_SCHEMA2, DOCKER_SCHEMA2).is_none());
    }

    #[test]
    fn picks_the_first_convertible_accepted_type() {
        let accepted = vec!["application/x-other".to_owned(), OCI_MANIFEST.to_owned()];
        assert_eq!(target_for(DOCKER_SCHEMA2, &accepted), Some(OCI_MANIFEST));
        assert_eq!(target_for(OCI_MANIFEST, &accepted), None);
    }
}
