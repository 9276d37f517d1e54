//! Managed signing's cryptography, pure: the deployment's signing CA, a signing
//! profile's key and certificate (issued by that CA), and Notary Project signatures
//! (a JWS envelope over the image's descriptor, in the OCI signature manifest that
//! attaches it to the image as a referrer).
//!
//! The algorithm is AWS Signer's Notation platform (`Notation-OCI-SHA384-ECDSA`):
//! ECDSA on P-384 with SHA-384, `ES384` in JWS. Keys travel as PKCS#8 PEM; the caller
//! seals them before they are stored.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use ring::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// AWS Signer's platform for Notation (the only one ECR's managed signing uses).
pub const NOTATION_PLATFORM: &str = "Notation-OCI-SHA384-ECDSA";
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const ENVELOPE_MEDIA_TYPE: &str = "application/jose+json";
const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";

#[derive(Debug, thiserror::Error)]
#[error("signing: {0}")]
pub struct SigningError(String);

fn err(e: impl std::fmt::Display) -> SigningError {
    SigningError(e.to_string())
}

/// A key and the certificate that names it (PEM both; the key never shown by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyAndCert {
    pub key_pem: String,
    pub cert_pem: String,
}

impl std::fmt::Debug for KeyAndCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCert")
            .field("key_pem", &"<redacted>")
            .field("cert_pem", &self.cert_pem)
            .finish()
    }
}

/// The CA's subject and lifetime: fixed, so that the CA can be rebuilt from its key
/// alone to issue certificates that chain to the stored one.
fn ca_params() -> Result<CertificateParams, SigningError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Berth signing CA");
    dn.push(DnType::OrganizationName, "Berth");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2050, 1, 1);
    Ok(p)
}

/// A new signing CA.
pub fn new_ca() -> Result<KeyAndCert, SigningError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
    let cert = ca_params()?.self_signed(&key).map_err(err)?;
    Ok(KeyAndCert {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    })
}

/// A profile's key and code-signing certificate, issued by `ca`, valid from
/// `not_before` to `not_after` (epoch seconds).
pub fn issue_profile_cert(
    ca: &KeyAndCert,
    subject: &str,
    not_before: i64,
    not_after: i64,
) -> Result<KeyAndCert, SigningError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(err)?;
    let issuer = ca_params()?.self_signed(&ca_key).map_err(err)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject);
    dn.push(DnType::OrganizationName, "Berth");
    p.distinguished_name = dn;
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).map_err(err)?;
    p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(err)?;
    let cert = p.signed_by(&key, &issuer, &ca_key).map_err(err)?;
    Ok(KeyAndCert {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    })
}

fn der_of(pem_text: &str) -> Result<Vec<u8>, SigningError> {
    let b64: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(b64.trim()).map_err(err)
}

/// What a signature is over: the image's descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub media_type: &'a str,
    pub digest: &'a str,
    pub size: u64,
}

/// A signature, ready to store: the envelope (a blob) and the manifest attaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub envelope: Vec<u8>,
    pub manifest: Vec<u8>,
}

pub const SIGNATURE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Sign `target` with `profile` (its certificate chains to `ca_cert_pem`) at
/// `signing_time` (RFC 3339): the Notary Project JWS envelope and its manifest.
pub fn sign(
    profile: &KeyAndCert,
    ca_cert_pem: &str,
    target: &Target<'_>,
    signing_time: &str,
    agent: &str,
) -> Result<Signature, SigningError> {
    let protected = json!({
        "alg": "ES384",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": PAYLOAD_CONTENT_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": signing_time,
    });
    let payload = json!({
        "targetArtifact": {
            "mediaType": target.media_type,
            "digest": target.digest,
            "size": target.size,
        }
    });
    let protected_b64 = URL_SAFE_NO_PAD.encode(protected.to_string());
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{protected_b64}.{payload_b64}");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = der_of(&profile.key_pem)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|e| err(format!("the profile's key: {e}")))?;
    let sig = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|e| err(format!("signing failed: {e}")))?;
    let leaf = der_of(&profile.cert_pem)?;
    let root = der_of(ca_cert_pem)?;
    let envelope = json!({
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {
            "x5c": [STANDARD.encode(&leaf), STANDARD.encode(&root)],
            "io.cncf.notary.signingAgent": agent,
        },
        "signature": URL_SAFE_NO_PAD.encode(sig.as_ref()),
    })
    .to_string()
    .into_bytes();
    let thumbprints = json!([
        hex::encode(Sha256::digest(&leaf)),
        hex::encode(Sha256::digest(&root))
    ]);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": SIGNATURE_MANIFEST_MEDIA_TYPE,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_CONFIG_MEDIA_TYPE,
            "digest": sha256_digest(EMPTY_CONFIG),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": ENVELOPE_MEDIA_TYPE,
            "digest": sha256_digest(&envelope),
            "size": envelope.len(),
        }],
        "subject": {
            "mediaType": target.media_type,
            "digest": target.digest,
            "size": target.size,
        },
        "annotations": {
            "io.cncf.notary.x509chain.thumbprint#S256": thumbprints.to_string(),
        },
    })
    .to_string()
    .into_bytes();
    Ok(Signature { envelope, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};

    #[test]
    fn a_signature_verifies_with_the_profile_certificates_key() {
        let ca = new_ca().expect("ca");
        let profile = issue_profile_cert(
            &ca,
            "arn:aws:signer:us-east-1:000000000000:/signing-profiles/p",
            1_700_000_000,
            2_000_000_000,
        )
        .expect("cert");
        let target = Target {
            media_type: "application/vnd.oci.image.manifest.v1+json",
            digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            size: 123,
        };
        let s = sign(
            &profile,
            &ca.cert_pem,
            &target,
            "2026-12-04T00:00:00Z",
            "Berth",
        )
        .expect("sign");
        let env: serde_json::Value = serde_json::from_slice(&s.envelope).expect("json");
        let input = format!(
            "{}.{}",
            env["protected"].as_str().expect("protected"),
            env["payload"].as_str().expect("payload")
        );
        let sig = URL_SAFE_NO_PAD
            .decode(env["signature"].as_str().expect("signature"))
            .expect("b64");
        // The public key is the certificate's; read it through rcgen's parse of the key.
        let key = KeyPair::from_pem(&profile.key_pem).expect("key");
        let public = UnparsedPublicKey::new(
            &ECDSA_P384_SHA384_FIXED,
            rcgen::PublicKeyData::der_bytes(&key),
        );
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        assert!(public.verify(b"tampered", &sig).is_err());
        let m: serde_json::Value = serde_json::from_slice(&s.manifest).expect("json");
        assert_eq!(m["subject"]["digest"], target.digest);
        assert_eq!(m["artifactType"], SIGNATURE_ARTIFACT_TYPE);
        assert_eq!(m["layers"][0]["digest"], sha256_digest(&s.envelope));
    }
}
