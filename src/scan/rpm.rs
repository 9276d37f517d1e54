//! The rpm database of current Red Hat, Fedora, Rocky, Alma and Amazon Linux 2023
//! images: SQLite (`rpmdb.sqlite`), whose `Packages` table holds one rpm header blob
//! per package. The BerkeleyDB (`Packages`: RHEL 7, CentOS 7, Amazon Linux 2) and NDB
//! (`Packages.db`: SUSE) formats are not read: an image with only those is reported
//! as unsupported, with that reason.

use std::path::PathBuf;

use futures_util::StreamExt;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::{Package, PackageKind};

/// Where the SQLite database is (Fedora ≥ 36 and RHEL 10 moved it under /usr).
pub const SQLITE_DBS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];
/// Formats only detected.
pub const OLDER_DBS: [&str; 4] = [
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;

#[derive(Debug, thiserror::Error)]
#[error("rpm database: {0}")]
pub struct RpmError(String);

/// The packages of an `rpmdb.sqlite`. SQLite reads files, so the bytes go to a
/// private temporary file for the time of the read.
pub async fn read_sqlite(db: &[u8]) -> Result<Vec<Package>, RpmError> {
    let file = TempFile::write(db).map_err(|e| RpmError(format!("temporary copy: {e}")))?;
    let options = SqliteConnectOptions::new()
        .filename(&file.0)
        .read_only(true)
        .immutable(true);
    let mut conn = options
        .connect()
        .await
        .map_err(|e| RpmError(format!("not an SQLite database: {e}")))?;
    // A view could compute rows without end; rpm writes a table.
    let kind: Option<(String,)> =
        sqlx::query_as("SELECT type FROM sqlite_master WHERE name = 'Packages'")
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| RpmError(format!("unreadable: {e}")))?;
    if kind.as_ref().map(|(k,)| k.as_str()) != Some("table") {
        return Err(RpmError("no Packages table".into()));
    }
    let mut packages = Vec::new();
    {
        let mut rows =
            sqlx::query_as::<_, (Vec<u8>,)>("SELECT blob FROM Packages").fetch(&mut conn);
        let mut read = 0usize;
        while let Some(row) = rows.next().await {
            let (blob,) = row.map_err(|e| RpmError(format!("unreadable row: {e}")))?;
            read += blob.len();
            if read > db.len() {
                return Err(RpmError("rows larger than the database file".into()));
            }
            if let Some(p) = Header::parse(&blob)?.package() {
                packages.push(p);
            }
        }
    }
    let _ = conn.close().await;
    Ok(packages)
}

/// An rpm header blob: counts, index entries, then the data they point into.
struct Header<'a> {
    index: &'a [u8],
    data: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Header<'a>, RpmError> {
        let bad = || RpmError("malformed package header".into());
        let count = be32(blob, 0).ok_or_else(bad)? as usize;
        let data_len = be32(blob, 4).ok_or_else(bad)? as usize;
        let index_end = count
            .checked_mul(16)
            .and_then(|n| n.checked_add(8))
            .ok_or_else(bad)?;
        let data_end = index_end.checked_add(data_len).ok_or_else(bad)?;
        if data_end > blob.len() {
            return Err(bad());
        }
        Ok(Header {
            index: &blob[8..index_end],
            data: &blob[index_end..data_end],
        })
    }

    /// (type, offset) of a tag's entry.
    fn entry(&self, tag: u32) -> Option<(u32, usize)> {
        self.index.chunks_exact(16).find_map(|e| {
            (be32(e, 0)? == tag).then(|| Some((be32(e, 4)?, be32(e, 8)? as usize)))?
        })
    }

    fn string(&self, tag: u32) -> Option<String> {
        let (kind, offset) = self.entry(tag)?;
        if kind != TYPE_STRING {
            return None;
        }
        let rest = self.data.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn int32(&self, tag: u32) -> Option<u32> {
        let (kind, offset) = self.entry(tag)?;
        (kind == TYPE_INT32).then(|| be32(self.data, offset))?
    }

    fn package(&self) -> Option<Package> {
        let name = self.string(TAG_NAME)?;
        // Imported signing keys are stored as pseudo-packages.
        if name == "gpg-pubkey" {
            return None;
        }
        let version = self.string(TAG_VERSION)?;
        let release = self.string(TAG_RELEASE)?;
        let evr = match self.int32(TAG_EPOCH) {
            Some(e) if e > 0 => format!("{e}:{version}-{release}"),
            _ => format!("{version}-{release}"),
        };
        // "openssl-3.0.7-25.el9_3.src.rpm" → "openssl".
        let source = self.string(TAG_SOURCERPM).and_then(|s| {
            let base = s
                .strip_suffix(".src.rpm")
                .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
            let mut parts = base.rsplitn(3, '-');
            let (_release, _version) = (parts.next()?, parts.next()?);
            parts.next().map(str::to_owned)
        });
        Some(Package {
            kind: PackageKind::Rpm,
            name,
            version: evr,
            source,
            source_version: None,
            location: None,
        })
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A private temporary file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn write(bytes: &[u8]) -> std::io::Result<TempFile> {
        let path = std::env::temp_dir().join(format!(
            "berth-rpmdb-{}.sqlite",
            uuid::Uuid::new_v4().simple()
        ));
        crate::fsutil::create_private_new(&path, bytes)?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header blob with string and int32 tags, as rpm writes them.
    pub(crate) fn header_blob(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        let mut count = 0u32;
        if let Some(e) = epoch {
            index.extend(
                [TAG_EPOCH, TYPE_INT32, data.len() as u32, 1]
                    .iter()
                    .flat_map(|v| v.to_be_bytes()),
            );
            data.extend(e.to_be_bytes());
            count += 1;
        }
        for (tag, s) in strings {
            index.extend(
                [*tag, TYPE_STRING, data.len() as u32, 1]
                    .iter()
                    .flat_map(|v| v.to_be_bytes()),
            );
            data.extend(s.as_bytes());
            data.push(0);
            count += 1;
        }
        let mut blob = count.to_be_bytes().to_vec();
        blob.extend((data.len() as u32).to_be_bytes());
        blob.extend(index);
        blob.extend(data);
        blob
    }

    #[test]
    fn headers_give_name_epoch_version_release_and_source() {
        let blob = header_blob(
            &[
                (TAG_NAME, "openssl-libs"),
                (TAG_VERSION, "3.0.7"),
                (TAG_RELEASE, "25.el9_3"),
                (TAG_SOURCERPM, "openssl-3.0.7-25.el9_3.src.rpm"),
            ],
            Some(1),
        );
        let p = Header::parse(&blob)
            .expect("valid")
            .package()
            .expect("a package");
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("openssl-libs", "1:3.0.7-25.el9_3")
        );
        assert_eq!(p.source.as_deref(), Some("openssl"));
        assert!(Header::parse(&blob[..blob.len() - 3]).is_err());
    }
}
