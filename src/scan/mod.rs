//! What is installed in an image: its layers unpacked in order (layers.rs, over a
//! bounded tar reader, tar.rs), its OS (os.rs) and its package databases (dpkg.rs,
//! apk.rs, rpm.rs). Matching what is installed against vulnerability data is
//! vulndb/'s work; running scans as jobs and keeping findings is the service's.

pub mod apk;
pub mod dpkg;
pub mod layers;
pub mod os;
pub mod rpm;
pub mod tar;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Layers decompressed at once by one scan.
const MAX_WORKERS: usize = 4;

pub use layers::{ImageFiles, LayerError, Limits};
use layers::{Want, Wanted};
pub use os::OsRelease;

/// Which package manager installed a package; it decides the version ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PackageKind {
    Dpkg,
    Apk,
    Rpm,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: PackageKind,
    /// The binary package's name (what is installed).
    pub name: String,
    pub version: String,
    /// The source package it was built from, if the database says.
    pub source: Option<String>,
    /// The source's version, where it differs from the binary's (dpkg only).
    pub source_version: Option<String>,
}

impl Package {
    /// The name distribution advisories use: the source package's.
    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }

    pub fn source_version(&self) -> &str {
        self.source_version.as_deref().unwrap_or(&self.version)
    }
}

/// What a scan found installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub os: Option<OsRelease>,
    pub packages: Vec<Package>,
    /// The package databases read (even if empty).
    pub databases: Vec<&'static str>,
    /// Package databases present in a format Berth does not read.
    pub unread: Vec<&'static str>,
}

/// The files the package readers need.
struct PackageFiles;

impl Wanted for PackageFiles {
    fn wants(&self, path: &str) -> Want {
        let read = os::RELEASE_FILES.contains(&path)
            || path == dpkg::STATUS
            || path == apk::INSTALLED
            || rpm::SQLITE_DBS.contains(&path)
            || path
                .strip_prefix(dpkg::STATUS_DIR)
                .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'));
        if read {
            Want::Content
        } else if rpm::OLDER_DBS.contains(&path) {
            Want::Presence
        } else {
            Want::Nothing
        }
    }

    /// Links that may lead to a wanted file: the wanted paths and their ancestors
    /// (`etc/os-release` → `../usr/lib/os-release`, `var/lib/rpm` → `/usr/lib/sysimage/rpm`).
    fn wants_link(&self, path: &str) -> bool {
        let known = os::RELEASE_FILES
            .iter()
            .chain(&rpm::SQLITE_DBS)
            .chain(&rpm::OLDER_DBS)
            .chain(&[dpkg::STATUS, dpkg::STATUS_DIR, apk::INSTALLED]);
        known.into_iter().any(|k| {
            k.strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// A layer that failed to unpack: its position (0-based) and why.
#[derive(Debug, thiserror::Error)]
#[error("layer {} of {count}: {error}", .index + 1)]
pub struct UnpackError {
    pub index: usize,
    pub count: usize,
    pub error: LayerError,
}

/// Unpack an image's layers. `open(i)` gives layer i's bytes and compressed size.
/// Layers are read in parallel (decompression is the cost), then applied in order.
/// Blocking: run it off the async threads.
pub fn unpack(
    count: usize,
    open: impl Fn(usize) -> std::io::Result<(Box<dyn Read + Send>, u64)> + Sync,
    limits: &Limits,
) -> Result<ImageFiles, UnpackError> {
    let usage = layers::Usage::default();
    let next = AtomicUsize::new(0);
    let read_one = |index: usize| -> Result<layers::LayerChanges, LayerError> {
        let (blob, size) = open(index).map_err(|e| LayerError::Store(e.to_string()))?;
        layers::read_layer(blob, size, &usage, &PackageFiles, limits)
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(count.max(1));
    let mut results: Vec<Option<Result<layers::LayerChanges, LayerError>>> =
        (0..count).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        let r = read_one(i);
                        let failed = r.is_err();
                        done.push((i, r));
                        if failed {
                            // Later layers cannot change the outcome.
                            next.store(count, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().unwrap_or_default() {
                results[i] = Some(r);
            }
        }
    });
    let mut files = ImageFiles::default();
    for (index, r) in results.into_iter().enumerate() {
        let failed = |error| UnpackError {
            index,
            count,
            error,
        };
        let changes = match r {
            Some(r) => r.map_err(failed)?,
            None => return Err(failed(LayerError::NotTar("not read".into()))),
        };
        files.apply(changes, limits).map_err(failed)?;
    }
    Ok(files)
}

/// What is installed, read from an unpacked image.
pub async fn inventory(files: &ImageFiles) -> Result<Inventory, rpm::RpmError> {
    let mut inv = Inventory {
        os: OsRelease::detect(files),
        ..Inventory::default()
    };
    if let Some(status) = files.read(dpkg::STATUS) {
        inv.databases.push("dpkg");
        inv.packages
            .extend(dpkg::parse(&String::from_utf8_lossy(&status)));
    }
    let distroless = files.files_under(dpkg::STATUS_DIR);
    if !distroless.is_empty() && !inv.databases.contains(&"dpkg") {
        inv.databases.push("dpkg");
    }
    for (_, status) in distroless {
        inv.packages
            .extend(dpkg::parse(&String::from_utf8_lossy(&status)));
    }
    if let Some(db) = files.read(apk::INSTALLED) {
        inv.databases.push("apk");
        inv.packages
            .extend(apk::parse(&String::from_utf8_lossy(&db)));
    }
    if let Some(db) = rpm::SQLITE_DBS.iter().find_map(|p| files.read(p)) {
        inv.databases.push("rpm");
        inv.packages.extend(rpm::read_sqlite(&db).await?);
    } else if rpm::OLDER_DBS.iter().any(|p| files.exists(p)) {
        inv.unread
            .push("rpm's BerkeleyDB or NDB database (RHEL 7, CentOS 7, Amazon Linux 2, SUSE)");
    }
    // Names and versions are matched and stored; control characters (NUL above all,
    // which PostgreSQL refuses) only come from damaged or hostile databases.
    inv.packages.retain(|p| {
        let fields = [&p.name, &p.version]
            .into_iter()
            .chain(&p.source)
            .chain(&p.source_version);
        fields.into_iter().all(|f| !f.chars().any(char::is_control))
    });
    inv.packages
        .sort_by(|a, b| (a.kind, &a.name, &a.version).cmp(&(b.kind, &b.name, &b.version)));
    inv.packages.dedup();
    Ok(inv)
}
