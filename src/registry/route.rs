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

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains('/')).then_some(s)
}

/// Parse a request path; `None` is a path the registry does not serve.
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
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Endpoint::Upload {
            name,
            id: non_empty(id)?,
        });
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Endpoint::Manifest {
            name,
            reference: non_empty(reference)?,
        });
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Endpoint::Blob {
            name,
            digest: non_empty(digest)?,
        });
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Endpoint::Referrers {
            name,
            digest: non_empty(digest)?,
        });
    }
    None
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
        assert_eq!(parse("/v3/"), None);
        assert_eq!(parse("/v2/app"), None);
        assert_eq!(parse("/v2/app/manifests/"), None);
    }
}
