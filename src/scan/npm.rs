//! npm packages: each installed package's `package.json` under `node_modules`, and
//! `package-lock.json` lockfiles (v1's nested `dependencies`, v2 and v3's `packages`)
//! for applications shipped with their lockfile. Packages only a developer installs
//! (`"dev": true`) are left out, as npm leaves them out of a production install.

use std::io::Read;

use serde::Deserialize;
use std::collections::BTreeMap;

const MAX_MANIFEST: u64 = 4 << 20;
/// Lockfiles are parsed whole; four layers may each be parsing one.
const MAX_LOCKFILE: u64 = 16 << 20;

/// `…/node_modules/NAME/package.json` or `…/node_modules/@SCOPE/NAME/package.json`.
pub fn is_installed_manifest(path: &str) -> bool {
    let parts: Vec<&str> = path.rsplitn(5, '/').collect();
    match parts.as_slice() {
        ["package.json", _, "node_modules", ..] => true,
        ["package.json", _, scope, "node_modules", ..] => scope.starts_with('@'),
        _ => false,
    }
}

/// A lockfile an application ships (npm's hidden `node_modules/.package-lock.json`
/// repeats what the manifests say).
pub fn is_lockfile(path: &str) -> bool {
    path.rsplit('/').next() == Some("package-lock.json")
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
}

pub fn read_manifest(data: &mut dyn Read) -> Option<(String, String)> {
    let mut text = Vec::new();
    data.take(MAX_MANIFEST).read_to_end(&mut text).ok()?;
    let m: Manifest = serde_json::from_slice(&text).ok()?;
    Some((
        m.name.filter(|n| !n.is_empty())?,
        m.version.filter(|v| !v.is_empty())?,
    ))
}

/// v2 and v3: every installed package under its install path. Members not read are
/// skipped by the parser, not kept.
#[derive(Deserialize)]
struct Lockfile {
    #[serde(default)]
    packages: BTreeMap<String, Installed>,
}

#[derive(Deserialize)]
struct Installed {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    link: bool,
}

/// v1: dependencies by name, with those they bundle nested.
#[derive(Deserialize)]
struct LockfileV1 {
    #[serde(default)]
    dependencies: BTreeMap<String, Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    version: Option<String>,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    dependencies: BTreeMap<String, Dependency>,
}

/// (name, version) of each package a lockfile installs.
pub fn read_lockfile(data: &mut dyn Read) -> Vec<(String, String)> {
    let mut text = Vec::new();
    if data.take(MAX_LOCKFILE).read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    let Ok(lock) = serde_json::from_slice::<Lockfile>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if lock.packages.is_empty() {
        if let Ok(v1) = serde_json::from_slice::<LockfileV1>(&text) {
            v1_dependencies(&v1.dependencies, &mut out);
        }
        return out;
    }
    for (key, p) in lock.packages {
        // "" is the application itself; keys are install paths.
        let Some(installed) = key
            .rsplit("node_modules/")
            .next()
            .filter(|_| !key.is_empty())
        else {
            continue;
        };
        if p.dev || p.link {
            continue;
        }
        let name = p.name.unwrap_or_else(|| installed.to_owned());
        if let Some(v) = p.version {
            out.push((name, v));
        }
    }
    out
}

/// Nested dependencies, depth first (serde_json bounds the nesting).
fn v1_dependencies(deps: &BTreeMap<String, Dependency>, out: &mut Vec<(String, String)>) {
    for (name, p) in deps {
        if p.dev {
            continue;
        }
        if let Some(v) = &p.version {
            out.push((name.clone(), v.clone()));
        }
        v1_dependencies(&p.dependencies, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_installed_packages_and_lockfile_entries() {
        assert!(is_installed_manifest(
            "app/node_modules/lodash/package.json"
        ));
        assert!(is_installed_manifest(
            "app/node_modules/@babel/core/package.json"
        ));
        assert!(is_installed_manifest(
            "node_modules/a/node_modules/b/package.json"
        ));
        assert!(!is_installed_manifest("app/package.json"));
        assert!(!is_installed_manifest(
            "app/node_modules/lodash/lib/package.json"
        ));
        let m = br#"{"name":"lodash","version":"4.17.20"}"#;
        assert_eq!(
            read_manifest(&mut &m[..]),
            Some(("lodash".into(), "4.17.20".into()))
        );
        let v3 = br#"{"lockfileVersion":3,"packages":{"":{"name":"app"},
            "node_modules/lodash":{"version":"4.17.20"},
            "node_modules/@x/y":{"version":"1.0.0"},
            "node_modules/a/node_modules/b":{"version":"2.0.0"},
            "node_modules/jest":{"version":"29.0.0","dev":true}}}"#;
        let mut got = read_lockfile(&mut &v3[..]);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("@x/y".into(), "1.0.0".into()),
                ("b".into(), "2.0.0".into()),
                ("lodash".into(), "4.17.20".into())
            ]
        );
        let v1 = br#"{"lockfileVersion":1,"dependencies":{"lodash":{"version":"4.17.20",
            "dependencies":{"minimist":{"version":"0.0.8"}}},"jest":{"version":"1","dev":true}}}"#;
        let mut got = read_lockfile(&mut &v1[..]);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("lodash".into(), "4.17.20".into()),
                ("minimist".into(), "0.0.8".into())
            ]
        );
    }
}
