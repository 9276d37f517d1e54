//! Which upstream registries a pull-through cache rule may name: ECR's list of kinds
//! (`upstreamRegistry`, each with its URL), and what the deployment's configuration
//! declares: where Berth connects for a URL (a mirror, a loopback test registry, an
//! air-gapped copy of Docker Hub) and registries outside ECR's list (Artifactory,
//! Harbor, a self-hosted GitLab). A URL that is neither is unsupported, as on ECR.

use serde::{Deserialize, Serialize};

/// ECR's upstream registry kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamRegistry {
    Ecr,
    EcrPublic,
    Quay,
    K8s,
    DockerHub,
    GithubContainerRegistry,
    AzureContainerRegistry,
    GitlabContainerRegistry,
    Chainguard,
}

/// Whether a rule's upstream needs a `credentialArn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialNeed {
    Required,
    Optional,
}

impl UpstreamRegistry {
    pub const ALL: [UpstreamRegistry; 9] = [
        UpstreamRegistry::Ecr,
        UpstreamRegistry::EcrPublic,
        UpstreamRegistry::Quay,
        UpstreamRegistry::K8s,
        UpstreamRegistry::DockerHub,
        UpstreamRegistry::GithubContainerRegistry,
        UpstreamRegistry::AzureContainerRegistry,
        UpstreamRegistry::GitlabContainerRegistry,
        UpstreamRegistry::Chainguard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamRegistry::Ecr => "ecr",
            UpstreamRegistry::EcrPublic => "ecr-public",
            UpstreamRegistry::Quay => "quay",
            UpstreamRegistry::K8s => "k8s",
            UpstreamRegistry::DockerHub => "docker-hub",
            UpstreamRegistry::GithubContainerRegistry => "github-container-registry",
            UpstreamRegistry::AzureContainerRegistry => "azure-container-registry",
            UpstreamRegistry::GitlabContainerRegistry => "gitlab-container-registry",
            UpstreamRegistry::Chainguard => "chainguard",
        }
    }

    pub fn parse(s: &str) -> Option<UpstreamRegistry> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether `url` is this kind's registry URL as ECR spells it.
    pub fn fits(self, url: &str) -> bool {
        match self {
            UpstreamRegistry::Ecr => ecr_registry_url(url).is_some(),
            UpstreamRegistry::EcrPublic => url == "public.ecr.aws",
            UpstreamRegistry::Quay => url == "quay.io",
            UpstreamRegistry::K8s => url == "registry.k8s.io",
            UpstreamRegistry::DockerHub => url == "registry-1.docker.io",
            UpstreamRegistry::GithubContainerRegistry => url == "ghcr.io",
            UpstreamRegistry::AzureContainerRegistry => {
                url.strip_suffix(".azurecr.io").is_some_and(is_label)
            }
            UpstreamRegistry::GitlabContainerRegistry => url == "registry.gitlab.com",
            UpstreamRegistry::Chainguard => url == "cgr.dev",
        }
    }

    /// ECR requires credentials for the registries that rate-limit or refuse anonymous
    /// pulls.
    pub fn credentials(self) -> CredentialNeed {
        match self {
            UpstreamRegistry::DockerHub
            | UpstreamRegistry::GithubContainerRegistry
            | UpstreamRegistry::AzureContainerRegistry
            | UpstreamRegistry::GitlabContainerRegistry => CredentialNeed::Required,
            _ => CredentialNeed::Optional,
        }
    }
}

/// `<account>.dkr.ecr.<region>.<domain>`: the account and region (ECR's own
/// `amazonaws.com`, or any domain a Berth deployment serves).
pub fn ecr_registry_url(url: &str) -> Option<(&str, &str)> {
    let (account, rest) = url.split_once(".dkr.ecr.")?;
    let (region, domain) = rest.split_once('.')?;
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !domain.is_empty();
    ok.then_some((account, region))
}

fn is_label(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An upstream the configuration declares (`[[pull_through_cache.upstreams]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredUpstream {
    /// The `upstreamRegistryUrl` rules name it by.
    pub url: String,
    /// Where Berth connects: `http(s)://host[:port]`; `https://<url>` when absent.
    pub endpoint: Option<String>,
    /// Which of ECR's kinds it is, if one.
    pub registry: Option<UpstreamRegistry>,
    /// Whether rules must name credentials for it (default: the kind's rule, else
    /// optional).
    pub credentials: Option<CredentialNeed>,
}

/// What a rule's upstream is, once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub registry: Option<UpstreamRegistry>,
    pub credentials: CredentialNeed,
}

/// ECR's kinds and the deployment's declared upstreams.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    declared: Vec<DeclaredUpstream>,
}

impl Upstreams {
    /// Check the declarations: unique URLs, HTTP(S) endpoints.
    pub fn new(declared: Vec<DeclaredUpstream>) -> Result<Upstreams, String> {
        for (i, d) in declared.iter().enumerate() {
            if d.url.is_empty() || d.url.contains(['/', ' ']) {
                return Err(format!("upstream url '{}' is not a host[:port]", d.url));
            }
            if declared[..i].iter().any(|e| e.url == d.url) {
                return Err(format!("upstream url '{}' is declared twice", d.url));
            }
            if let Some(e) = &d.endpoint {
                let ok =
                    (e.starts_with("http://") || e.starts_with("https://")) && !e.ends_with('/');
                if !ok {
                    return Err(format!(
                        "upstream endpoint '{e}' must be http(s)://host[:port] without a trailing slash"
                    ));
                }
            }
        }
        Ok(Upstreams { declared })
    }

    fn declared(&self, url: &str) -> Option<&DeclaredUpstream> {
        self.declared.iter().find(|d| d.url == url)
    }

    /// What a rule for `url` (of `kind`, when the request says) is; `None`: unsupported.
    pub fn resolve(&self, url: &str, kind: Option<UpstreamRegistry>) -> Option<Resolved> {
        if let Some(d) = self.declared(url) {
            let registry = match (d.registry, kind) {
                (Some(declared), Some(asked)) if declared != asked => return None,
                (declared, asked) => declared.or(asked),
            };
            let credentials = d
                .credentials
                .or(registry.map(UpstreamRegistry::credentials))
                .unwrap_or(CredentialNeed::Optional);
            return Some(Resolved {
                registry,
                credentials,
            });
        }
        let registry = match kind {
            Some(k) => k.fits(url).then_some(k)?,
            None => UpstreamRegistry::ALL.into_iter().find(|k| k.fits(url))?,
        };
        Some(Resolved {
            registry: Some(registry),
            credentials: registry.credentials(),
        })
    }

    /// Where Berth connects for `url`.
    pub fn endpoint(&self, url: &str) -> String {
        self.declared(url)
            .and_then(|d| d.endpoint.clone())
            .unwrap_or_else(|| format!("https://{url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_fit_their_urls() {
        use UpstreamRegistry as U;
        assert!(U::DockerHub.fits("registry-1.docker.io"));
        assert!(!U::DockerHub.fits("docker.io"));
        assert!(U::AzureContainerRegistry.fits("myreg.azurecr.io"));
        assert!(!U::AzureContainerRegistry.fits(".azurecr.io"));
        assert!(U::Ecr.fits("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(U::Ecr.fits("123456789012.dkr.ecr.eu-west-1.berth.test"));
        assert!(!U::Ecr.fits("12345.dkr.ecr.eu-west-1.amazonaws.com"));
        for k in U::ALL {
            assert_eq!(U::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn undeclared_urls_must_be_ecrs() {
        let u = Upstreams::default();
        assert_eq!(
            u.resolve("ghcr.io", None).map(|r| r.registry),
            Some(Some(UpstreamRegistry::GithubContainerRegistry))
        );
        assert_eq!(u.resolve("ghcr.io", Some(UpstreamRegistry::Quay)), None);
        assert_eq!(u.resolve("harbor.example", None), None);
        assert_eq!(u.endpoint("ghcr.io"), "https://ghcr.io");
    }

    #[test]
    fn declared_urls_are_accepted_and_redirected() {
        let u = Upstreams::new(vec![
            DeclaredUpstream {
                url: "harbor.example".into(),
                endpoint: Some("http://127.0.0.1:5001".into()),
                registry: None,
                credentials: Some(CredentialNeed::Required),
            },
            DeclaredUpstream {
                url: "registry-1.docker.io".into(),
                endpoint: Some("http://127.0.0.1:5002".into()),
                registry: None,
                credentials: None,
            },
        ])
        .expect("valid");
        let harbor = u.resolve("harbor.example", None).expect("declared");
        assert_eq!(harbor.registry, None);
        assert_eq!(harbor.credentials, CredentialNeed::Required);
        let hub = u
            .resolve("registry-1.docker.io", Some(UpstreamRegistry::DockerHub))
            .expect("hub");
        assert_eq!(hub.credentials, CredentialNeed::Required);
        assert_eq!(u.endpoint("registry-1.docker.io"), "http://127.0.0.1:5002");
        assert!(Upstreams::new(vec![DeclaredUpstream {
            url: "x".into(),
            endpoint: Some("ftp://x".into()),
            registry: None,
            credentials: None,
        }])
        .is_err());
    }
}
