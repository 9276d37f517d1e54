//! `berth admin tls init`: a local certificate authority and a server certificate it
//! signs, for the API host and the registry hosts of the configured domain, so that
//! docker, podman, skopeo and the AWS CLI can reach Berth over HTTPS once they trust
//! the authority. The authority is kept and reused: running the command again (for a
//! new region, say) issues a new server certificate the clients already trust.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Where the files go under the output directory.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn under(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }

    fn ca_key(&self) -> PathBuf {
        self.ca_cert.with_file_name("ca.key")
    }
}

/// The names the server certificate covers: for each region, the registry hosts
/// (`*.dkr.ecr.<region>.<domain>`) and the API host (`api.ecr.<region>.<domain>`); the
/// domain itself, the public-URL host, `localhost` and `127.0.0.1`.
pub fn names(domain: &str, public_host: &str, regions: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for r in regions {
        names.push(format!("*.dkr.ecr.{r}.{domain}"));
        names.push(format!("api.ecr.{r}.{domain}"));
    }
    names.extend([domain, public_host, "localhost", "127.0.0.1"].map(str::to_owned));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Berth local CA");
    dn.push(DnType::OrganizationName, "Berth");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(p)
}

/// Create (or reuse) the authority and issue a server certificate for `names`.
/// Returns whether the authority is new.
pub fn init(files: &TlsFiles, names: &[String]) -> anyhow::Result<bool> {
    let ca_key_path = files.ca_key();
    let (ca_key, fresh) = if files.ca_cert.exists() && ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?;
        (KeyPair::from_pem(&pem).context("the CA key")?, false)
    } else {
        (KeyPair::generate()?, true)
    };
    // The same subject and key as the stored authority: what it signs chains to it.
    let ca = ca_params()?.self_signed(&ca_key)?;
    if fresh {
        if let Some(dir) = files.ca_cert.parent() {
            crate::fsutil::create_private_dir(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        replace_private(&ca_key_path, ca_key.serialize_pem().as_bytes())?;
        std::fs::write(&files.ca_cert, ca.pem())
            .with_context(|| format!("writing {}", files.ca_cert.display()))?;
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    replace_private(&files.key, key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, cert.pem())
        .with_context(|| format!("writing {}", files.cert.display()))?;
    Ok(fresh)
}

/// Write a new key file, mode 0600 from the start.
fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    crate::fsutil::create_private_new(path, bytes)
        .map(drop)
        .with_context(|| format!("writing {}", path.display()))
}

/// How to start with the files and make each client trust them.
pub fn instructions(files: &TlsFiles, names: &[String], registry_example: &str) -> String {
    let ca = files.ca_cert.display();
    format!(
        "TLS: certificate authority {ca}\n\
         server certificate {cert} (key {key}) for:\n  {names}\n\n\
         Serve HTTPS with it:\n  berth serve --tls-cert {cert} --tls-key {key} ...\n\n\
         Trust the authority (once per client machine):\n\
         \x20 docker:        mkdir -p /etc/docker/certs.d/{reg} && cp {ca} /etc/docker/certs.d/{reg}/ca.crt\n\
         \x20                (one directory per registry host:port)\n\
         \x20 podman/skopeo: mkdir -p /etc/containers/certs.d/{reg} && cp {ca} /etc/containers/certs.d/{reg}/ca.crt\n\
         \x20                (or --cert-dir DIR with ca.crt in it)\n\
         \x20 aws CLI, SDKs: export AWS_CA_BUNDLE={ca}\n",
        cert = files.cert.display(),
        key = files.key.display(),
        names = names.join("\n  "),
        reg = registry_example,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_registry_and_api_hosts_of_each_region_once() {
        let n = names(
            "example.test",
            "example.test",
            &["us-east-1".into(), "eu-west-1".into()],
        );
        assert_eq!(
            n,
            [
                "*.dkr.ecr.us-east-1.example.test",
                "api.ecr.us-east-1.example.test",
                "*.dkr.ecr.eu-west-1.example.test",
                "api.ecr.eu-west-1.example.test",
                "example.test",
                "localhost",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn a_second_run_reuses_the_authority_and_the_server_key_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles::under(&dir.path().join("tls"));
        let names = names("localhost", "localhost", &["us-east-1".into()]);
        assert!(init(&files, &names).expect("first"));
        let ca = std::fs::read(&files.ca_cert).expect("ca");
        assert!(!init(&files, &names).expect("second"));
        assert_eq!(std::fs::read(&files.ca_cert).expect("ca"), ca);
        crate::http::tls::acceptor(&files.cert, &files.key).expect("loads");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
