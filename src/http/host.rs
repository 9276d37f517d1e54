//! Which registry a request addresses: `<account>.dkr.ecr.<region>.<domain>[:port]`
//! names one; any other host means the default account and region.

use axum::http::{header, HeaderMap};

use crate::aws::{AccountId, Region};
use crate::meta::RegistryKey;

#[derive(Debug, Clone)]
pub struct HostRouting {
    pub domain: String,
    pub default: RegistryKey,
}

impl HostRouting {
    pub fn registry_for(&self, headers: &HeaderMap) -> RegistryKey {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| self.parse_host(h))
            .unwrap_or_else(|| self.default.clone())
    }

    fn parse_host(&self, host: &str) -> Option<RegistryKey> {
        let host = strip_port(host).to_ascii_lowercase();
        let rest = host.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        let mut parts = rest.split('.');
        let (account, dkr, ecr, region) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || dkr != "dkr" || ecr != "ecr" {
            return None;
        }
        Some(RegistryKey {
            account_id: AccountId::parse(account)?,
            region: Region::parse(region)?,
        })
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn routing() -> HostRouting {
        HostRouting {
            domain: "localhost".into(),
            default: RegistryKey {
                account_id: AccountId::parse("000000000000").expect("an account id"),
                region: Region::parse("us-east-1").expect("a region"),
            },
        }
    }

    fn for_host(h: &str) -> RegistryKey {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).expect("host"));
        routing().registry_for(&headers)
    }

    #[test]
    fn host_selects_registry() {
        let r = for_host("111122223333.dkr.ecr.eu-west-1.localhost:5000");
        assert_eq!(
            (r.account_id.as_str(), r.region.as_str()),
            ("111122223333", "eu-west-1")
        );
        let r = for_host("111122223333.dkr.ecr.eu-west-1.localhost");
        assert_eq!(r.region, "eu-west-1");
        for other in [
            "127.0.0.1:5000",
            "localhost",
            "1111.dkr.ecr.eu-west-1.localhost",
            "111122223333.dkr.ecr.eu-west-1.example.com",
            "x.111122223333.dkr.ecr.eu-west-1.localhost",
        ] {
            assert_eq!(for_host(other), routing().default, "{other}");
        }
    }
}
