//! Files only their owner can read: the data directory holds secrets (the master key, the
//! credentials file, the metadata database), so it is 0700 and what Berth writes is 0600.
//!
//! Modes are set only on what Berth creates or owns: a directory or file it cannot
//! change (a volume with a group owner, a read-only secret mount) is used as it is, with
//! a warning when others can read it.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Create `dir` and any missing parents with mode 0700, and make `dir` itself 0700 when
/// it exists already (parents that exist are never touched).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    restrict(dir, 0o700)
}

/// Make an existing file 0600 (files written by earlier versions were world-readable).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => restrict(path, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Set `mode` on `path` if others can read it; if that is not allowed (not ours, or a
/// read-only mount), say so and go on.
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(e) if is_not_ours(&e) => {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{current:o}"),
                "others can read this and Berth cannot change its mode"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn is_not_ours(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// A fresh name beside `path`, created exclusively (never through a planted link).
fn open_temp_beside(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random).map_err(std::io::Error::other)?;
    let name = format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        hex::encode(random)
    );
    let tmp = path.with_file_name(name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    Ok((tmp, f))
}

/// Write `bytes` to `path` with mode 0600, replacing it atomically and durably.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (tmp, mut f) = open_temp_beside(path)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Create `path` with mode 0600 and `bytes` only if it does not exist yet; false if it
/// did. Two processes racing get one winner, and neither sees a partial file.
pub fn create_private_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let (tmp, mut f) = open_temp_beside(path)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    // A hard link fails if the target exists, unlike a rename.
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The owner of a directory, when this process runs as another user (`sudo berth admin
/// ...`): what it creates there must be handed back, or the server cannot use it.
pub fn foreign_owner(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    let owner = std::fs::metadata(dir).ok()?.uid();
    (me != owner).then_some(owner)
}

/// Give every file under `dir` that this process owns to `owner` (and its group).
pub fn hand_back(dir: &Path, owner: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let me = std::fs::metadata("/proc/self")?.uid();
    let group = std::fs::metadata(dir)?.gid();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                pending.push(path.clone());
            }
            if meta.uid() == me {
                std::os::unix::fs::lchown(&path, Some(owner), Some(group))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_dirs() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir(&dir).expect("private dir");
        assert_eq!(mode(&dir), 0o700);
        create_private_dir(&dir.join("a/b")).expect("nested");
        assert_eq!(mode(&dir.join("a")), 0o700);
        assert_eq!(mode(root.path()), 0o755, "an existing parent is left alone");
        let f = dir.join("key");
        assert!(create_private_new(&f, b"one").expect("create"));
        assert!(!create_private_new(&f, b"two").expect("create again"));
        assert_eq!(std::fs::read(&f).expect("read"), b"one");
        assert_eq!(mode(&f), 0o600);
        write_private_atomic(&f, b"three").expect("write");
        assert_eq!(std::fs::read(&f).expect("read"), b"three");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        make_private(&f).expect("make private");
        assert_eq!(mode(&f), 0o600);
        let leftovers = std::fs::read_dir(&dir)
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .count();
        assert_eq!(leftovers, 0);
        assert_eq!(foreign_owner(&dir), None);
    }
}
