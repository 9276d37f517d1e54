//! AWS Signature Version 4 verification, for the API front ends.
//!
//! The server rebuilds the canonical request from exactly the headers the client says it
//! signed, derives the signing key from the secret of the access key named in the
//! credential scope, and compares signatures in constant time. Both the `Authorization`
//! header form and the presigned query form are accepted.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Accepted difference between the request's time and ours.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest a presigned URL may be valid, as on AWS.
pub const MAX_PRESIGNED_SECONDS: i64 = 7 * 24 * 3600;

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
    #[error("Signature expired: {request} is now earlier than {earliest} ({now} - 15 min.)")]
    Expired {
        request: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {request} is still later than {latest} ({now} + 15 min.)")]
    NotYetCurrent {
        request: String,
        latest: String,
        now: String,
    },
    #[error("Credential should be scoped to correct service: '{0}'.")]
    WrongService(String),
    #[error("Credential should be scoped to a valid region.")]
    WrongRegion,
    #[error("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope}' != '{date}', from '{amz_date}'.")]
    ScopeDate {
        scope: String,
        date: String,
        amz_date: String,
    },
}

/// The parts of a signature a client presents, from the header or the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub access_key_id: String,
    /// `yyyymmdd` of the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, in the client's order.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date` (`yyyymmddThhmmssZ`).
    pub amz_date: String,
    pub session_token: Option<String>,
    /// Presigned URLs only: seconds the signature stays valid.
    pub expires: Option<i64>,
}

/// What the server knows of the request, to rebuild its canonical form.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// (lowercase name, value) pairs, every header of the request.
    pub headers: &'a [(String, String)],
    /// hex(sha256(body)).
    pub payload_hash: &'a str,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn parse_scope(credential: &str) -> Result<(String, String, String, String), SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"] if !key.is_empty() => Ok((
            (*key).to_owned(),
            (*date).to_owned(),
            (*region).to_owned(),
            (*service).to_owned(),
        )),
        _ => Err(SigError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        ))),
    }
}

/// Read the signature from the `Authorization` header or, failing that, the query string.
pub fn presented(headers: &[(String, String)], query: &str) -> Result<Presented, SigError> {
    if let Some(auth) = header(headers, "authorization") {
        return from_header(auth, headers);
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    if params.iter().any(|(k, _)| k == "X-Amz-Signature") {
        return from_query(&params);
    }
    Err(SigError::Missing)
}

fn from_header(auth: &str, headers: &[(String, String)]) -> Result<Presented, SigError> {
    let rest = auth.strip_prefix(ALGORITHM).ok_or_else(|| {
        SigError::Incomplete(format!(
            "Unsupported signature algorithm (expected {ALGORITHM})"
        ))
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for field in rest.split(',') {
        let (k, v) = match field.trim().split_once('=') {
            Some(kv) => kv,
            None => continue,
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let missing = |what: &str| {
        SigError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={auth_preview}",
            auth_preview = ALGORITHM
        ))
    };
    let (key, date, region, service) =
        parse_scope(credential.ok_or_else(|| missing("Credential"))?)?;
    let signed_headers = signed
        .ok_or_else(|| missing("SignedHeaders"))?
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    let amz_date = header(headers, "x-amz-date")
        .ok_or_else(|| missing("X-Amz-Date"))?
        .to_owned();
    Ok(Presented {
        access_key_id: key,
        scope_date: date,
        region,
        service,
        signed_headers,
        signature: signature.ok_or_else(|| missing("Signature"))?.to_owned(),
        amz_date,
        session_token: header(headers, "x-amz-security-token").map(str::to_owned),
        expires: None,
    })
}

fn from_query(params: &[(String, String)]) -> Result<Presented, SigError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let missing = |what: &str| {
        SigError::Incomplete(format!(
            "Query-string authentication requires the {what} parameter"
        ))
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(missing("X-Amz-Algorithm"));
    }
    let (key, date, region, service) =
        parse_scope(get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?)?;
    let expires = get("X-Amz-Expires")
        .ok_or_else(|| missing("X-Amz-Expires"))?
        .parse::<i64>()
        .map_err(|_| missing("X-Amz-Expires"))?;
    if !(1..=MAX_PRESIGNED_SECONDS).contains(&expires) {
        return Err(SigError::Incomplete(format!(
            "X-Amz-Expires must be between 1 and {MAX_PRESIGNED_SECONDS} seconds (a week)"
        )));
    }
    Ok(Presented {
        access_key_id: key,
        scope_date: date,
        region,
        service,
        signed_headers: get("X-Amz-SignedHeaders")
            .ok_or_else(|| missing("X-Amz-SignedHeaders"))?
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: get("X-Amz-Signature")
            .ok_or_else(|| missing("X-Amz-Signature"))?
            .to_owned(),
        amz_date: get("X-Amz-Date")
            .ok_or_else(|| missing("X-Amz-Date"))?
            .to_owned(),
        session_token: get("X-Amz-Security-Token").map(str::to_owned),
        expires: Some(expires),
    })
}

/// RFC 3986 percent-encoding of everything but unreserved characters, as SigV4 wants.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Bytes, not `str` slices: the two bytes after `%` may be inside a character.
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The canonical query string: every parameter but the signature, sorted, re-encoded.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(&k.replace('+', "%20")), false),
                uri_encode(&percent_decode(&v.replace('+', "%20")), false),
            )
        })
        .filter(|(k, _)| k != "X-Amz-Signature")
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical URI of a non-S3 service: each segment encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(path, true)
}

fn canonical_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn canonical_request(req: &RequestParts<'_>, p: &Presented) -> Result<String, SigError> {
    let mut lines = vec![
        req.method.to_owned(),
        canonical_uri(req.path),
        canonical_query(req.query),
    ];
    let mut names = p.signed_headers.clone();
    names.sort();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| canonical_header_value(v))
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch);
        }
        lines.push(format!("{name}:{}", values.join(",")));
    }
    lines.push(String::new());
    lines.push(names.join(";"));
    lines.push(req.payload_hash.to_owned());
    Ok(lines.join("\n"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub fn string_to_sign(p: &Presented, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        p.amz_date,
        p.scope_date,
        p.region,
        p.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// The `Authorization` header a client sends for `req` (whose headers must include
/// `host` and `x-amz-date` = `amz_date`), signed with `key`/`secret` for `region` and
/// `service`: Berth signing its own requests to another registry's API.
pub fn authorization_header(
    req: &RequestParts<'_>,
    key: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> String {
    let mut names: Vec<String> = req.headers.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    let p = Presented {
        access_key_id: key.to_owned(),
        scope_date: amz_date.chars().take(8).collect(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names.clone(),
        signature: String::new(),
        amz_date: amz_date.to_owned(),
        session_token: None,
        expires: None,
    };
    // Every signed header is present: the canonical form cannot be refused.
    let canonical = canonical_request(req, &p).unwrap_or_default();
    let k = signing_key(secret, &p.scope_date, region, service);
    let signature = hex::encode(hmac(&k, string_to_sign(&p, &canonical).as_bytes()));
    format!(
        "{ALGORITHM} Credential={key}/{}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={signature}",
        p.scope_date,
        names.join(";")
    )
}

/// Parse `yyyymmddThhmmssZ` into seconds since the epoch.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    // ASCII only, so that the byte offsets below are character boundaries.
    if s.len() != 16 || !s.is_ascii() || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyymmddThhmmssZ` of an epoch time.
pub fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Check the request's time, scope and service before any key lookup.
pub fn check_scope(p: &Presented, service: &str, now: i64) -> Result<(), SigError> {
    if p.service != service {
        return Err(SigError::WrongService(service.to_owned()));
    }
    let t = parse_amz_date(&p.amz_date)
        .ok_or_else(|| SigError::Incomplete(format!("Invalid X-Amz-Date '{}'", p.amz_date)))?;
    if !p.amz_date.starts_with(&p.scope_date) {
        return Err(SigError::ScopeDate {
            scope: p.scope_date.clone(),
            date: p.amz_date.chars().take(8).collect(),
            amz_date: p.amz_date.clone(),
        });
    }
    if !p.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    // Presigned URLs are valid from their date until date + expires; other requests
    // within the skew window around now. Neither may come from the future.
    let (oldest_ok, earliest) = match p.expires {
        Some(expires) => (t.saturating_add(expires) >= now, now),
        None => (t >= now - MAX_SKEW_SECONDS, now - MAX_SKEW_SECONDS),
    };
    if !oldest_ok {
        let request = match p.expires {
            Some(expires) => format_amz_date(t.saturating_add(expires)),
            None => p.amz_date.clone(),
        };
        return Err(SigError::Expired {
            request,
            earliest: format_amz_date(earliest),
            now: format_amz_date(now),
        });
    }
    if t > now + MAX_SKEW_SECONDS {
        return Err(SigError::NotYetCurrent {
            request: p.amz_date.clone(),
            latest: format_amz_date(now + MAX_SKEW_SECONDS),
            now: format_amz_date(now),
        });
    }
    Ok(())
}

/// Verify the presented signature with the access key's secret.
pub fn verify(req: &RequestParts<'_>, p: &Presented, secret: &str) -> Result<(), SigError> {
    let key = signing_key(secret, &p.scope_date, &p.region, &p.service);
    verify_with_key(req, p, &key)
}

/// As [`verify`], with the signing key of the request's scope already derived.
pub fn verify_with_key(req: &RequestParts<'_>, p: &Presented, key: &[u8]) -> Result<(), SigError> {
    let canonical = canonical_request(req, p)?;
    let sts = string_to_sign(p, &canonical);
    let expected = hex::decode(&p.signature).map_err(|_| SigError::Mismatch)?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SigError::Mismatch)?;
    mac.update(sts.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&expected).map_err(|_| SigError::Mismatch)
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_berth_signs_its_own_verifier_accepts() {
        let headers = vec![
            ("host".to_owned(), "example:8080".to_owned()),
            ("x-amz-date".to_owned(), "20261204T120000Z".to_owned()),
            (
                "x-amz-target".to_owned(),
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken".to_owned(),
            ),
        ];
        let hash = hex::encode(Sha256::digest(b"{}"));
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &hash,
        };
        let auth = authorization_header(
            &req,
            "AKIDEXAMPLE",
            "secret",
            "us-east-1",
            "ecr",
            "20261204T120000Z",
        );
        let mut all = headers.clone();
        all.push(("authorization".to_owned(), auth));
        let p = presented(&all, "").expect("parsed");
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &all,
            payload_hash: &hash,
        };
        assert!(verify(&req, &p, "secret").is_ok());
        assert!(verify(&req, &p, "other").is_err());
    }

    use super::*;

    fn kat_headers() -> Vec<(String, String)> {
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "api.ecr.us-east-1.amazonaws.com"),
            ("x-amz-date", "20250102T030405Z"),
            ("x-amz-security-token", "SESSIONTOKENEXAMPLE"),
            ("x-amz-target", "AmazonEC2ContainerRegistry_V20150921.CreateRepository"),
            ("user-agent", "not signed"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=f0232baa18295b8161e8a49436661688a35c197d413e3a0ba6bc7b70f4150b4a",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const BODY_HASH: &str = "6b2400db5eb431787a2849564a2407180cb6faaf1616ae1b410b562c72c70ae3";

    #[test]
    fn known_answer_from_botocore() {
        let headers = kat_headers();
        let p = presented(&headers, "").expect("parse");
        assert_eq!(p.access_key_id, "AKIDEXAMPLE");
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.session_token.as_deref(), Some("SESSIONTOKENEXAMPLE"));
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: BODY_HASH,
        };
        let canonical = canonical_request(&req, &p).expect("canonical");
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "89287fc94f19fac131ec76b06664e901bb05f2a66c5c9c520697baf41e08af01"
        );
        assert_eq!(
            hex::encode(signing_key(SECRET, "20250102", "us-east-1", "ecr")),
            "8600c0cc15e8684d8766cff9402fcef38716516e8896c9084357b2151745a011"
        );
        assert_eq!(verify(&req, &p, SECRET), Ok(()));
        assert_eq!(verify(&req, &p, "wrong"), Err(SigError::Mismatch));
        let tampered = RequestParts {
            payload_hash: "00",
            ..req
        };
        assert_eq!(verify(&tampered, &p, SECRET), Err(SigError::Mismatch));
    }

    #[test]
    fn time_and_scope_checks() {
        let headers = kat_headers();
        let p = presented(&headers, "").expect("parse");
        let t = parse_amz_date("20250102T030405Z").expect("date");
        assert_eq!(format_amz_date(t), "20250102T030405Z");
        assert_eq!(check_scope(&p, "ecr", t + 60), Ok(()));
        assert!(matches!(
            check_scope(&p, "ecr", t + 16 * 60),
            Err(SigError::Expired { .. })
        ));
        assert!(matches!(
            check_scope(&p, "ecr", t - 16 * 60),
            Err(SigError::NotYetCurrent { .. })
        ));
        assert_eq!(
            check_scope(&p, "iam", t),
            Err(SigError::WrongService("iam".into()))
        );
        assert_eq!(presented(&[], ""), Err(SigError::Missing));
        assert!(matches!(
            presented(
                &[(
                    "authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=a/b".into()
                )],
                ""
            ),
            Err(SigError::Incomplete(_))
        ));
    }

    #[test]
    fn presigned_lifetimes_are_bounded() {
        let query = |expires: &str| {
            format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250102%2Fus-east-1%2Fecr%2Faws4_request&X-Amz-Date=20250102T030405Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=00")
        };
        assert!(presented(&[], &query("60")).is_ok());
        for bad in ["0", "-1", "604801", "9223372036854775807"] {
            assert!(
                matches!(presented(&[], &query(bad)), Err(SigError::Incomplete(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_round_trip() {
        for s in ["19700101T000000Z", "20000229T235959Z", "20261122T061330Z"] {
            let t = parse_amz_date(s).expect("parse");
            assert_eq!(format_amz_date(t), s);
        }
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("2025-01-02"), None);
        // 16 bytes with a multi-byte character across offset 8 (found by fuzzing).
        assert_eq!(parse_amz_date("2025010\u{e9}T0304Z5"), None);
        assert_eq!(parse_amz_date("20250102\u{e9}03040Z"), None);
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(
            canonical_query("b=2&a=x%20y&X-Amz-Signature=s"),
            "a=x%20y&b=2"
        );
        assert_eq!(canonical_query(""), "");
        // `%` followed by part of a multi-byte character is kept as it is.
        assert_eq!(canonical_query("a=%\u{e9}x"), "a=%25%C3%A9x");
        assert_eq!(canonical_query("a=%4"), "a=%254");
    }
}
