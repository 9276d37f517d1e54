//! `/v2/...` paths → typed endpoints.
//!
//! Repository names contain `/`, so paths are parsed from the right: the last
//! `/manifests/`, `/blobs/uploads`, `/blobs/`, `/tags/list` or `/referrers/` splits the
//! name from the rest. Names are validated later, by the handler.

use crate::audit::CallKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Ping,
    Catalog,
    Tags { name: &'a str },
    Manifest { name: &'a str, reference: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Uploads { name: &'a str },
    Upload { name: &'a str, id: &'a str },
    Referrers { name: &'a str, digest: &'a str },
}

/// How a request to an endpoint is counted and audited: the metrics' operation label,
/// and, for what the audit trail records, ECR's name for the call and its kind.
pub fn operation(
    endpoint: &Endpoint<'_>,
    method: &axum::http::Method,
) -> (&'static str, Option<(&'static str, CallKind)>) {
    use axum::http::Method as M;
    let push = |name| Some((name, CallKind::Push));
    let pull = |name| Some((name, CallKind::Pull));
    match (endpoint, method) {
        (Endpoint::Ping, _) => ("ping", None),
        (Endpoint::Catalog, _) => ("catalog", None),
        (Endpoint::Tags { .. }, _) => ("tags_list", None),
        (Endpoint::Manifest { .. }, &M::GET) => ("manifest_get", pull("BatchGetImage")),
        (Endpoint::Manifest { .. }, &M::HEAD) => ("manifest_head", None),
        (Endpoint::Manifest { .. }, &M::PUT) => ("manifest_put", push("PutImage")),
        (Endpoint::Manifest { .. }, &M::DELETE) => (
            "manifest_delete",
            Some(("BatchDeleteImage", CallKind::Mutation)),
        ),
        (Endpoint::Manifest { .. }, _) => ("manifest_other", None),
        (Endpoint::Blob { .. }, &M::GET) => ("blob_get", pull("GetDownloadUrlForLayer")),
        (Endpoint::Blob { .. }, &M::HEAD) => ("blob_head", None),
        (Endpoint::Blob { .. }, _) => ("blob_other", None),
        (Endpoint::Uploads { .. }, _) => ("upload_start", push("InitiateLayerUpload")),
        (Endpoint::Upload { .. }, &M::PATCH) => ("upload_patch", push("UploadLayerPart")),
        (Endpoint::Upload { .. }, &M::PUT) => ("upload_put", push("CompleteLayerUpload")),
        (Endpoint::Upload { .. }, _) => ("upload_other", None),
        (Endpoint::Referrers { .. }, _) => ("referrers", None),
    }
}

/// ECR's request parameters for a registry call (what CloudTrail would show).
pub fn parameters(
    endpoint: &Endpoint<'_>,
    registry_id: &str,
) -> (Option<String>, serde_json::Value) {
    use serde_json::json;
    let reference = |r: &str| {
        if r.contains(':') {
            json!({ "imageDigest": r })
        } else {
            json!({ "imageTag": r })
        }
    };
    let (name, mut v) = match endpoint {
        Endpoint::Manifest { name, reference: r } => (*name, reference(r)),
        Endpoint::Blob { name, digest } => (*name, json!({ "layerDigest": digest })),
        Endpoint::Upload { name, id } => (*name, json!({ "uploadId": id })),
        Endpoint::Uploads { name } | Endpoint::Tags { name } => (*name, json!({})),
        Endpoint::Referrers { name, digest } => (*name, json!({ "imageDigest": digest })),
        Endpoint::Ping | Endpoint::Catalog => return (None, json!({ "registryId": registry_id })),
    };
    v["registryId"] = json!(registry_id);
    v["repositoryName"] = json!(name);
    (Some(name.to_owned()), v)
}

/// Parse a request path; `None` is a path the registry does not serve.
///
/// What follows the name (a tag, digest or upload id) never contains `/`, so the route
/// words sit at fixed positions counted from the right, whatever the name contains.
pub fn parse(path: &str) -> Option<Endpoint<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Endpoint::Ping);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Endpoint::Tags { name });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Endpoint::Uploads { name });
    }
    // `<name>/<word>/<last>`: split off the last segment, then the route word before it.
    let (before, last) = rest.rsplit_once('/')?;
    if last.is_empty() {
        return None;
    }
    let (name, word) = before.rsplit_once('/')?;
    match word {
        "manifests" => Some(Endpoint::Manifest {
            name,
            reference: last,
        }),
        "referrers" => Some(Endpoint::Referrers { name, digest: last }),
        "blobs" => Some(Endpoint::Blob { name, digest: last }),
        "uploads" => {
            let name = name.strip_suffix("/blobs")?;
            Some(Endpoint::Upload { name, id: last })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_endpoint() {
        assert_eq!(parse("/v2/"), Some(Endpoint::Ping));
        assert_eq!(parse("/v2"), Some(Endpoint::Ping));
        assert_eq!(parse("/v2/_catalog"), Some(Endpoint::Catalog));
        assert_eq!(
            parse("/v2/a/b/tags/list"),
            Some(Endpoint::Tags { name: "a/b" })
        );
        assert_eq!(
            parse("/v2/team/app/manifests/latest"),
            Some(Endpoint::Manifest {
                name: "team/app",
                reference: "latest"
            })
        );
        assert_eq!(
            parse("/v2/app/blobs/sha256:abc"),
            Some(Endpoint::Blob {
                name: "app",
                digest: "sha256:abc"
            })
        );
        assert_eq!(
            parse("/v2/app/blobs/uploads/"),
            Some(Endpoint::Uploads { name: "app" })
        );
        assert_eq!(
            parse("/v2/app/blobs/uploads"),
            Some(Endpoint::Uploads { name: "app" })
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads/123"),
            Some(Endpoint::Upload {
                name: "x",
                id: "123"
            })
        );
        assert_eq!(
            parse("/v2/x/referrers/sha256:1"),
            Some(Endpoint::Referrers {
                name: "x",
                digest: "sha256:1"
            })
        );
        // A repository may itself be called "manifests" or "blobs".
        assert_eq!(
            parse("/v2/blobs/manifests/manifests/v1"),
            Some(Endpoint::Manifest {
                name: "blobs/manifests",
                reference: "v1"
            })
        );
        // Route words inside a name do not confuse the parser.
        assert_eq!(
            parse("/v2/kw/manifests/tags/blobs/sha256:1"),
            Some(Endpoint::Blob {
                name: "kw/manifests/tags",
                digest: "sha256:1"
            })
        );
        assert_eq!(
            parse("/v2/kw/blobs/uploads/blobs/sha256:1"),
            Some(Endpoint::Blob {
                name: "kw/blobs/uploads",
                digest: "sha256:1"
            })
        );
        assert_eq!(
            parse("/v2/kw/blobs/uploads/blobs/uploads/u1"),
            Some(Endpoint::Upload {
                name: "kw/blobs/uploads",
                id: "u1"
            })
        );
        assert_eq!(parse("/v3/"), None);
        assert_eq!(parse("/v2/app"), None);
        assert_eq!(parse("/v2/app/manifests/"), None);
    }
}
