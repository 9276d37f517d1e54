//! What Berth advertises to clients: the scheme, registry domain and port they reach it
//! on. Behind a reverse proxy (which may terminate TLS) that differs from the listener,
//! so every advertised address (`repositoryUri`, `proxyEndpoint`, download URLs, the
//! Basic realm) is built from one [`PublicUrl`], never from `--listen`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// `SCHEME://DOMAIN[:PORT]`: registries are `<account>.dkr.ecr.<region>.<DOMAIN>[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub scheme: Scheme,
    /// Lower-case host name, without a port.
    pub domain: String,
    /// `None` when it is the scheme's default port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not SCHEME://DOMAIN[:PORT] (http or https, no path)")]
pub struct InvalidPublicUrl(pub String);

impl PublicUrl {
    pub fn new(scheme: Scheme, domain: &str, port: u16) -> PublicUrl {
        PublicUrl {
            scheme,
            domain: domain.to_ascii_lowercase(),
            port: (port != scheme.default_port()).then_some(port),
        }
    }

    pub fn parse(text: &str) -> Result<PublicUrl, InvalidPublicUrl> {
        let bad = || InvalidPublicUrl(text.to_owned());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // A domain, since registries are its subdomains: no IPv6 literal, no user info.
        let (domain, port) = match rest.split_once(':') {
            Some((d, p)) => (d, p.parse::<u16>().map_err(|_| bad())?),
            None => (rest, scheme.default_port()),
        };
        let valid = !domain.is_empty()
            && port != 0
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        if !valid {
            return Err(bad());
        }
        Ok(PublicUrl::new(scheme, domain, port))
    }

    /// `:PORT`, or nothing for the scheme's default port.
    fn port_suffix(&self) -> String {
        self.port.map(|p| format!(":{p}")).unwrap_or_default()
    }

    /// The registry host of an account and region: `<account>.dkr.ecr.<region>.<domain>[:port]`.
    pub fn registry_host(&self, account_id: &str, region: &str) -> String {
        format!(
            "{account_id}.dkr.ecr.{region}.{}{}",
            self.domain,
            self.port_suffix()
        )
    }

    /// `scheme://<registry host>`: GetAuthorizationToken's `proxyEndpoint`.
    pub fn registry_origin(&self, account_id: &str, region: &str) -> String {
        format!(
            "{}://{}",
            self.scheme.as_str(),
            self.registry_host(account_id, region)
        )
    }

    /// The plain host (`domain[:port]`), which addresses the default registry.
    pub fn host(&self) -> String {
        format!("{}{}", self.domain, self.port_suffix())
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_not_advertised() {
        let u = PublicUrl::new(Scheme::Http, "localhost", 80);
        assert_eq!(
            u.registry_host("000000000000", "us-east-1"),
            "000000000000.dkr.ecr.us-east-1.localhost"
        );
        let u = PublicUrl::new(Scheme::Http, "LocalHost", 5000);
        assert_eq!(u.to_string(), "http://localhost:5000");
        assert_eq!(
            u.registry_origin("111122223333", "eu-west-1"),
            "http://111122223333.dkr.ecr.eu-west-1.localhost:5000"
        );
    }

    #[test]
    fn parses_scheme_domain_and_port() {
        let u = PublicUrl::parse("https://registry.example.com").expect("url");
        assert_eq!(
            (u.scheme, u.domain.as_str()),
            (Scheme::Https, "registry.example.com")
        );
        assert_eq!(u.host(), "registry.example.com");
        let u = PublicUrl::parse("https://registry.example.com:443/").expect("url");
        assert_eq!(u.host(), "registry.example.com");
        let u = PublicUrl::parse("HTTP://r.example:8080").expect("url");
        assert_eq!(u.to_string(), "http://r.example:8080");
        for bad in [
            "registry.example.com",
            "ftp://x",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://x/path",
            "https://user@x",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
