//! What is installed in an image: its layers unpacked in order (layers.rs, over a
//! bounded tar reader, tar.rs), its OS (os.rs), its package databases (dpkg.rs,
//! apk.rs, rpm.rs) and its language packages (python.rs, npm.rs, cargo.rs, java.rs,
//! and binary.rs for Go and auditable Rust executables). Matching what is installed against vulnerability data is
//! vulndb/'s work; running scans as jobs and keeping findings is the service's.
//!
//! OS package databases are kept whole; language packages are many small files, or
//! files too large to keep (binaries, archives), so each is reduced to the packages it
//! names as it streams past, and only that summary is kept in its place.

pub mod apk;
pub mod auditable;
pub mod binary;
pub mod cargo;
pub mod dpkg;
pub mod elf;
pub mod gobinary;
pub mod java;
pub mod layers;
pub mod npm;
pub mod os;
pub mod python;
pub mod rpm;
pub mod tar;

use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

/// Layers decompressed at once by one scan.
const MAX_WORKERS: usize = 4;

pub use layers::{ImageFiles, LayerError, Limits};
use layers::{Want, Wanted};
pub use os::OsRelease;

/// Which package manager installed a package; it decides the version ordering and
/// the ecosystem whose advisories apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Dpkg,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
}

impl PackageKind {
    /// The OS's package managers, whose advisories come from the distribution.
    pub fn is_os(self) -> bool {
        matches!(
            self,
            PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm
        )
    }
}

/// Where a package was found: the file that names it and the layer that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub path: String,
    pub layer: usize,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub kind: PackageKind,
    /// The binary package's name (what is installed).
    pub name: String,
    pub version: String,
    /// The source package it was built from, if the database says.
    pub source: Option<String>,
    /// The source's version, where it differs from the binary's (dpkg only).
    pub source_version: Option<String>,
    pub location: Option<Location>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub os: Option<OsRelease>,
    pub packages: Vec<Package>,
    /// The package databases read (even if empty).
    pub databases: Vec<String>,
    /// Package databases present in a format Berth does not read.
    pub unread: Vec<String>,
    /// The image's layer digests, in order (packages name their layer by index).
    #[serde(default)]
    pub layers: Vec<String>,
}

/// What a file of the image is to the package readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Kept whole: release files and OS package databases.
    Os,
    /// Kept as present: a database format Berth does not read.
    Unread,
    PythonMetadata,
    NodeManifest,
    NpmLockfile,
    CargoLockfile,
    JavaArchive,
    /// Possibly a Go or an auditable Rust binary.
    Executable,
}

/// Where no program an image runs lives: data, headers, configuration.
const NOT_PROGRAMS: [&str; 10] = [
    "usr/share/",
    "usr/include/",
    "usr/src/",
    "usr/lib/locale/",
    "etc/",
    "var/",
    "proc/",
    "sys/",
    "dev/",
    "run/",
];

fn role(path: &str) -> Option<Role> {
    let os_file = os::RELEASE_FILES.contains(&path)
        || path == dpkg::STATUS
        || path == apk::INSTALLED
        || rpm::SQLITE_DBS.contains(&path)
        || path
            .strip_prefix(dpkg::STATUS_DIR)
            .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'));
    let base = path.rsplit('/').next().unwrap_or(path);
    let role = if os_file {
        Role::Os
    } else if rpm::OLDER_DBS.contains(&path) {
        Role::Unread
    } else if python::is_metadata(path) {
        Role::PythonMetadata
    } else if npm::is_installed_manifest(path) {
        Role::NodeManifest
    } else if npm::is_lockfile(path) {
        Role::NpmLockfile
    } else if cargo::is_lockfile(path) {
        Role::CargoLockfile
    } else if java::is_archive(path) {
        Role::JavaArchive
    } else if !base.contains('.') && !NOT_PROGRAMS.iter().any(|p| path.starts_with(p)) {
        Role::Executable
    } else {
        return None;
    };
    Some(role)
}

/// A language package as an extracted file's summary records it.
type Found = (PackageKind, String, String);

/// The packages a language file names, read as it streams past; `inflate_budget` is
/// what the scan's archives may still inflate.
fn extract(role: Role, data: &mut dyn Read, inflate_budget: &AtomicU64) -> Vec<Found> {
    let tagged = |kind: PackageKind, found: Vec<(String, String)>| {
        found
            .into_iter()
            .map(|(name, version)| (kind, name, version))
            .collect()
    };
    match role {
        Role::PythonMetadata => tagged(
            PackageKind::Python,
            python::read(data).into_iter().collect(),
        ),
        Role::NodeManifest => tagged(
            PackageKind::Npm,
            npm::read_manifest(data).into_iter().collect(),
        ),
        Role::NpmLockfile => tagged(PackageKind::Npm, npm::read_lockfile(data)),
        Role::CargoLockfile => tagged(PackageKind::Cargo, cargo::read_lockfile(data)),
        Role::JavaArchive => tagged(PackageKind::Maven, java::read(data, inflate_budget)),
        Role::Executable => match binary::read(data) {
            Some(binary::Built::Go(info)) => {
                let mut found: Vec<Found> = gobinary::stdlib_version(&info.go_version)
                    .map(|v| (PackageKind::Go, "stdlib".to_owned(), v))
                    .into_iter()
                    .collect();
                found.extend(tagged(PackageKind::Go, info.modules));
                found
            }
            Some(binary::Built::Rust(crates)) => tagged(PackageKind::Cargo, crates),
            None => Vec::new(),
        },
        Role::Os | Role::Unread => Vec::new(),
    }
}

/// The files the package readers need: the OS's, and with `languages` (enhanced
/// scanning) the language packages'.
struct PackageFiles {
    languages: bool,
    inflate_budget: AtomicU64,
}

impl PackageFiles {
    fn role(&self, path: &str) -> Option<Role> {
        role(path).filter(|r| self.languages || matches!(r, Role::Os | Role::Unread))
    }
}

impl Wanted for PackageFiles {
    fn wants(&self, path: &str) -> Want {
        match self.role(path) {
            Some(Role::Os) => Want::Content,
            Some(Role::Unread) => Want::Presence,
            Some(_) => Want::Extract,
            None => Want::Nothing,
        }
    }

    fn extract(&self, path: &str, data: &mut dyn Read) -> Option<Vec<u8>> {
        let found = extract(self.role(path)?, data, &self.inflate_budget);
        // Names and versions come from the image: control characters (NUL above all,
        // which PostgreSQL refuses) only come from damaged or hostile files.
        let found: Vec<Found> = found
            .into_iter()
            .filter(|(_, n, v)| !n.chars().chain(v.chars()).any(char::is_control))
            .filter(|(_, n, v)| n.len() <= 512 && v.len() <= 256)
            .collect();
        if found.is_empty() {
            return None;
        }
        serde_json::to_vec(&found).ok()
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

/// Unpack an image's layers (with `languages`, reading language packages too).
/// `open(i)` gives layer i's bytes and compressed size.
/// Layers are read in parallel (decompression is the cost), then applied in order.
/// Blocking: run it off the async threads.
pub fn unpack(
    count: usize,
    open: impl Fn(usize) -> std::io::Result<(Box<dyn Read + Send>, u64)> + Sync,
    limits: &Limits,
    languages: bool,
) -> Result<ImageFiles, UnpackError> {
    let usage = layers::Usage::default();
    let wanted = PackageFiles {
        languages,
        inflate_budget: AtomicU64::new(java::SCAN_INFLATE_BUDGET),
    };
    let next = AtomicUsize::new(0);
    let read_one = |index: usize| -> Result<layers::LayerChanges, LayerError> {
        let (blob, size) = open(index).map_err(|e| LayerError::Store(e.to_string()))?;
        layers::read_layer(blob, size, &usage, &wanted, limits)
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

/// Packages read from one file, marked with where they were found.
fn located(found: Vec<Package>, path: &str, layer: usize) -> impl Iterator<Item = Package> + '_ {
    found.into_iter().map(move |mut p| {
        p.location = Some(Location {
            path: path.to_owned(),
            layer,
        });
        p
    })
}

/// What is installed, read from an unpacked image.
pub async fn inventory(files: &ImageFiles) -> Result<Inventory, rpm::RpmError> {
    let mut inv = Inventory {
        os: OsRelease::detect(files),
        ..Inventory::default()
    };
    if let Some((status, layer)) = files.read_with_layer(dpkg::STATUS) {
        inv.databases.push("dpkg".into());
        let found = dpkg::parse(&String::from_utf8_lossy(&status));
        inv.packages.extend(located(found, dpkg::STATUS, layer));
    }
    let distroless = files.files_under(dpkg::STATUS_DIR);
    if !distroless.is_empty() && !inv.databases.iter().any(|d| d == "dpkg") {
        inv.databases.push("dpkg".into());
    }
    for (name, status) in distroless {
        let path = format!("{}/{name}", dpkg::STATUS_DIR);
        let layer = files.read_with_layer(&path).map_or(0, |(_, l)| l);
        let found = dpkg::parse(&String::from_utf8_lossy(&status));
        inv.packages.extend(located(found, &path, layer));
    }
    if let Some((db, layer)) = files.read_with_layer(apk::INSTALLED) {
        inv.databases.push("apk".into());
        let found = apk::parse(&String::from_utf8_lossy(&db));
        inv.packages.extend(located(found, apk::INSTALLED, layer));
    }
    let rpmdb = rpm::SQLITE_DBS
        .iter()
        .find_map(|p| Some((*p, files.read_with_layer(p)?)));
    if let Some((path, (db, layer))) = rpmdb {
        inv.databases.push("rpm".into());
        let found = rpm::read_sqlite(&db).await?;
        inv.packages.extend(located(found, path, layer));
    } else if rpm::OLDER_DBS.iter().any(|p| files.exists(p)) {
        inv.unread.push(
            "rpm's BerkeleyDB or NDB database (RHEL 7, CentOS 7, Amazon Linux 2, SUSE)".into(),
        );
    }
    inv.packages.extend(language_packages(files));
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

/// The language packages named by the summaries kept for extracted files.
fn language_packages(files: &ImageFiles) -> Vec<Package> {
    let mut out = Vec::new();
    for (path, summary, layer) in files.files() {
        if !matches!(role(path), Some(r) if r != Role::Os && r != Role::Unread) {
            continue;
        }
        let Ok(found) = serde_json::from_slice::<Vec<Found>>(summary) else {
            continue;
        };
        let packages = found.into_iter().map(|(kind, name, version)| Package {
            kind,
            name,
            version,
            source: None,
            source_version: None,
            location: None,
        });
        out.extend(located(packages.collect(), path, layer));
    }
    out
}
