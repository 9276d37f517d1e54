//! Reading OSV data from disk: the per-ecosystem `all.zip` dumps OSV publishes, a
//! directory of record files, or one record file. Records are read one at a time, so
//! memory stays flat whatever the dump's size.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::osv::{self, Advisory};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Record { path: String, message: String },
}

/// Records are at most this large (the largest in OSV's dumps are a few MiB).
const MAX_RECORD: u64 = 64 << 20;

/// Read every record under `paths`, giving each to `each`; withdrawn records are
/// skipped. Blocking.
pub fn read_all(
    paths: &[PathBuf],
    each: &mut dyn FnMut(Advisory) -> bool,
) -> Result<(), ImportError> {
    for path in paths {
        let failed = |message: String| ImportError::Read {
            path: path.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| failed(e.to_string()))?;
        let go_on = if meta.is_dir() {
            read_dir(path, each)?
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
        {
            read_zip(path, each)?
        } else {
            let bytes = read_limited(File::open(path).map_err(|e| failed(e.to_string()))?, path)?;
            give(&bytes, &path.display().to_string(), each)?
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

fn read_zip(path: &Path, each: &mut dyn FnMut(Advisory) -> bool) -> Result<bool, ImportError> {
    let failed = |message: String| ImportError::Read {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| failed(format!("not a zip archive: {e}")))?;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| failed(e.to_string()))?;
        let Ok(entry_name) = entry.name().map(|n| n.into_owned()) else {
            continue;
        };
        if !entry.is_file() || !entry_name.ends_with(".json") {
            continue;
        }
        let name = format!("{}:{}", path.display(), entry_name);
        let bytes = read_limited(entry, Path::new(&name))?;
        if !give(&bytes, &name, each)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn read_dir(dir: &Path, each: &mut dyn FnMut(Advisory) -> bool) -> Result<bool, ImportError> {
    let failed = |message: String| ImportError::Read {
        path: dir.display().to_string(),
        message,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| failed(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let go_on = if p.is_dir() {
            read_dir(&p, each)?
        } else if p.extension().is_some_and(|e| e == "json") {
            let bytes = read_limited(File::open(&p).map_err(|e| failed(e.to_string()))?, &p)?;
            give(&bytes, &p.display().to_string(), each)?
        } else if p.extension().is_some_and(|e| e == "zip") {
            read_zip(&p, each)?
        } else {
            true
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

fn read_limited(r: impl Read, path: &Path) -> Result<Vec<u8>, ImportError> {
    let mut bytes = Vec::new();
    r.take(MAX_RECORD + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_RECORD {
        return Err(ImportError::Record {
            path: path.display().to_string(),
            message: "record larger than 64 MiB".into(),
        });
    }
    Ok(bytes)
}

fn give(
    bytes: &[u8],
    name: &str,
    each: &mut dyn FnMut(Advisory) -> bool,
) -> Result<bool, ImportError> {
    match osv::parse(bytes) {
        Ok(Some(a)) => Ok(each(a)),
        Ok(None) => Ok(true),
        Err(e) => Err(ImportError::Record {
            path: name.to_owned(),
            message: e.to_string(),
        }),
    }
}
