//! `/v2/...` paths → typed endpoints.
//!
//! Repository names contain `/`, so paths are parsed from the right: the last
//! `/manifests/`, `/blobs/uploads`, `/blobs/`, `/tags/list` or `/referrers/` splits the
//! name from the rest. Names are validated later, by the handler.

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
