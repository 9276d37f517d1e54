//! An image's file system as the scanner sees it: its layers applied in order, keeping
//! only the files the package readers ask for (and the symbolic links on the way to
//! them), so memory stays bounded whatever the image's size.
//!
//! Layers are gzip, zstd or plain tar, told apart by their first bytes (media types
//! lie: Docker's says gzip for uncompressed layers in some tools). OCI whiteouts apply
//! to the layers below: `.wh.NAME` hides NAME, `.wh..wh..opq` empties its directory.
//!
//! Hostile layers fail the scan with a reason: an entry whose path climbs out of the
//! root, a link whose target does, a layer that expands without bound (a decompression
//! bomb), a truncated archive, or a header or file beyond the limits.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use super::tar::{EntryKind, TarError, TarReader};

/// Bounds on what one scan may read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A layer may expand up to this many times its compressed size...
    pub max_expansion: u64,
    /// ...once it has expanded beyond this many bytes (small layers of zeros are fine).
    pub expansion_floor: u64,
    /// All layers together, uncompressed.
    pub max_image_bytes: u64,
    /// One kept file (a package database).
    pub max_file_bytes: u64,
    /// All kept files together.
    pub max_kept_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_expansion: 250,
            expansion_floor: 1 << 30,
            max_image_bytes: 32 << 30,
            max_file_bytes: 128 << 20,
            max_kept_bytes: 192 << 20,
        }
    }
}

/// An error of the blob store under a layer's stream, told apart from the layer's own
/// errors (bad gzip, truncation) when it surfaces from the decompressor or tar reader.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreFailure(pub String);

/// What the layers of one image have used so far (they are read in parallel).
#[derive(Debug, Default)]
pub struct Usage {
    /// Bytes decompressed.
    expanded: AtomicU64,
    /// Bytes of files kept.
    kept: AtomicU64,
    /// Keys for the hashes of replaced paths, one set for all of a scan's layers (and
    /// random, so no image can be made to collide).
    paths: RandomState,
}

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("entry '{0}' climbs outside the image root")]
    Traversal(String),
    #[error("link '{path}' points outside the image root ('{target}')")]
    LinkEscape { path: String, target: String },
    #[error("the layer expands to more than {expanded} bytes from {compressed} compressed bytes (a decompression bomb)")]
    Bomb { expanded: u64, compressed: u64 },
    #[error("the image expands to more than {0} bytes, beyond the scanner's limit")]
    TooLarge(u64),
    #[error("the package databases kept from the image exceed {0} bytes")]
    KeptTooLarge(u64),
    #[error("not a tar archive: {0}")]
    NotTar(String),
    /// The blob store failed while the layer was read: nothing is known of the layer.
    #[error("the blob store failed: {0}")]
    Store(String),
    #[error("{0}")]
    Tar(#[from] TarError),
}

impl LayerError {
    /// Whether the image is merely too large (ECR reports that apart from failures).
    pub fn is_too_large(&self) -> bool {
        matches!(self, LayerError::TooLarge(_))
    }

    /// Whether the blob store failed (worth trying again), not the layer.
    pub fn is_store(&self) -> bool {
        matches!(self, LayerError::Store(_))
    }
}

/// What the readers want of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Nothing,
    /// Its content.
    Content,
    /// Only that it exists (kept empty): a database format Berth does not read.
    Presence,
    /// What `Wanted::extract` makes of it as it streams past: files too large or too
    /// many to keep (binaries, archives, a node_modules tree's manifests).
    Extract,
}

/// Which paths the readers want.
pub trait Wanted {
    fn wants(&self, path: &str) -> Want;
    /// Whether a symbolic link at `path` may be on the way to a wanted file.
    fn wants_link(&self, path: &str) -> bool;
    /// A small summary of a file the readers asked to extract, kept in its place;
    /// `None` if the file holds nothing of interest. Errors of the content are the
    /// reader's to swallow: the layer's own stream errors are reported by the walk.
    fn extract(&self, _path: &str, _data: &mut dyn Read) -> Option<Vec<u8>> {
        None
    }
}

/// What the scanner kept of a file system node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(Arc<Vec<u8>>),
    Symlink(String),
}

/// The kept part of an image's file system, after all its layers: each node with the
/// index of the layer that wrote it.
#[derive(Debug, Default)]
pub struct ImageFiles {
    nodes: BTreeMap<String, (Node, usize)>,
    kept_bytes: u64,
    layers: usize,
}

/// Hop limit for symbolic links, as Linux's.
const MAX_LINK_HOPS: usize = 40;

impl ImageFiles {
    /// A file's content, following symbolic links inside the image.
    pub fn read(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        self.read_with_layer(path).map(|(data, _)| data)
    }

    /// A file's content and the index of the layer that wrote it.
    pub fn read_with_layer(&self, path: &str) -> Option<(Arc<Vec<u8>>, usize)> {
        match self.nodes.get(&self.resolve(path)?)? {
            (Node::File(data), layer) => Some((data.clone(), *layer)),
            (Node::Symlink(_), _) => None,
        }
    }

    /// Every kept file: (path, content, layer index).
    pub fn files(&self) -> impl Iterator<Item = (&str, &Arc<Vec<u8>>, usize)> {
        self.nodes.iter().filter_map(|(p, (n, layer))| match n {
            Node::File(d) => Some((p.as_str(), d, *layer)),
            Node::Symlink(_) => None,
        })
    }

    /// Kept files under `dir` (resolved), as (name relative to dir, content).
    pub fn files_under(&self, dir: &str) -> Vec<(String, Arc<Vec<u8>>)> {
        let Some(dir) = self.resolve(dir) else {
            return Vec::new();
        };
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, (n, _))| match n {
                Node::File(d) => Some((p[prefix.len()..].to_owned(), d.clone())),
                Node::Symlink(_) => None,
            })
            .collect()
    }

    /// Whether a path (resolved) exists among the kept nodes.
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path)
            .is_some_and(|p| self.nodes.contains_key(&p))
    }

    /// `path` with every symbolic link on the way replaced by its target, as the
    /// kernel does inside a chroot (`..` at the root stays at the root).
    fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_owned).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            done.push(part);
            let here = done.join("/");
            if let Some((Node::Symlink(target), _)) = self.nodes.get(&here) {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(components(target).rev().map(str::to_owned));
            }
        }
        Some(done.join("/"))
    }

    /// Apply one layer on top of the ones before.
    pub fn apply(&mut self, layer: LayerChanges, limits: &Limits) -> Result<(), LayerError> {
        for dir in &layer.opaque {
            self.remove_under(dir);
        }
        for path in &layer.whiteouts {
            self.remove(path);
            self.remove_under(path);
        }
        if !layer.replaced.is_empty() {
            let doomed: Vec<String> = self
                .nodes
                .keys()
                .filter(|p| layer.replaced.contains(&layer.paths.hash_one(p.as_str())))
                .cloned()
                .collect();
            for p in doomed {
                self.remove(&p);
            }
        }
        for (path, node) in layer.nodes {
            self.remove_under(&path);
            let size = match &node {
                Node::File(d) => d.len() as u64,
                Node::Symlink(_) => 0,
            };
            self.remove(&path);
            self.kept_bytes += size;
            if self.kept_bytes > limits.max_kept_bytes {
                return Err(LayerError::KeptTooLarge(limits.max_kept_bytes));
            }
            self.nodes.insert(path, (node, self.layers));
        }
        self.layers += 1;
        Ok(())
    }

    fn remove(&mut self, path: &str) {
        if let Some((Node::File(d), _)) = self.nodes.remove(path) {
            self.kept_bytes -= d.len() as u64;
        }
    }

    fn remove_under(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.remove(&p);
        }
    }
}

/// What one layer changes, read from its archive.
#[derive(Debug, Default)]
pub struct LayerChanges {
    nodes: Vec<(String, Node)>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
    /// Hashes of the paths this layer put something at that is not kept (a directory,
    /// a link, a file that holds nothing of interest): what a lower layer kept there is
    /// gone. Hashes, because such paths may be most of a layer's.
    replaced: HashSet<u64>,
    paths: RandomState,
}

/// Read one layer: decompress it (as its first bytes say) and keep what `wanted` asks
/// for. `compressed` is the blob's size, for the expansion bound; `expanded` counts
/// what all the image's layers expanded to so far (layers are read in parallel).
pub fn read_layer(
    blob: impl Read,
    compressed: u64,
    usage: &Usage,
    wanted: &dyn Wanted,
    limits: &Limits,
) -> Result<LayerChanges, LayerError> {
    let mut input = BufReader::with_capacity(256 * 1024, blob);
    let magic = input.fill_buf().map_err(TarError::from)?.to_vec();
    let decoded: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ZstdFrames {
            input: Some(input),
            frame: None,
        })
    } else {
        Box::new(input)
    };
    let counted = Counted {
        inner: decoded,
        read: 0,
        compressed: compressed.max(1),
        image: &usage.expanded,
        limits: *limits,
        tripped: None,
    };
    let mut tar = TarReader::new(counted);
    let changes = walk(&mut tar, wanted, limits, usage);
    if let Some(e) = tar.into_inner().tripped {
        return Err(e);
    }
    match changes {
        Err(LayerError::Tar(TarError::Io(e))) => {
            match e.get_ref().and_then(|r| r.downcast_ref::<StoreFailure>()) {
                Some(store) => Err(LayerError::Store(store.0.clone())),
                None => Err(LayerError::NotTar(e.to_string())),
            }
        }
        other => other,
    }
}

fn walk<R: Read>(
    tar: &mut TarReader<R>,
    wanted: &dyn Wanted,
    limits: &Limits,
    usage: &Usage,
) -> Result<LayerChanges, LayerError> {
    let kept = &usage.kept;
    let mut changes = LayerChanges {
        paths: usage.paths.clone(),
        ..LayerChanges::default()
    };
    // Within a layer the last entry for a path wins (tar appends replacements).
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let keep = |nodes: &mut BTreeMap<String, Node>, path: String, node: Node| {
        let size = |n: &Node| match n {
            Node::File(d) => d.len() as u64,
            Node::Symlink(_) => 0,
        };
        let added = size(&node);
        if let Some(old) = nodes.insert(path, node) {
            kept.fetch_sub(size(&old), AtomicOrdering::Relaxed);
        }
        if kept.fetch_add(added, AtomicOrdering::Relaxed) + added > limits.max_kept_bytes {
            return Err(LayerError::KeptTooLarge(limits.max_kept_bytes));
        }
        Ok(())
    };
    // Only entries on the way to what is kept matter: the rest are not recorded, so a
    // layer of many entries costs little memory. Whiteouts are all recorded (what they
    // hide may hold kept files at any depth), each charged to the kept budget.
    let relevant = |p: &str| wanted.wants(p) != Want::Nothing || wanted.wants_link(p);
    let charge = |path: &str| {
        let n = path.len() as u64;
        if kept.fetch_add(n, AtomicOrdering::Relaxed) + n > limits.max_kept_bytes {
            return Err(LayerError::KeptTooLarge(limits.max_kept_bytes));
        }
        Ok(())
    };
    while let Some(entry) = tar.next_entry()? {
        let path = normalise(&entry.path)?;
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d.to_owned(), b),
            None => (String::new(), path.as_str()),
        };
        if base == ".wh..wh..opq" {
            charge(&dir)?;
            changes.opaque.push(dir);
            continue;
        }
        if let Some(hidden) = base.strip_prefix(".wh.") {
            let hidden = join(&dir, hidden);
            charge(&hidden)?;
            changes.whiteouts.push(hidden);
            continue;
        }
        match entry.kind {
            EntryKind::Dir => {
                if relevant(&path) {
                    replace(&mut nodes, &mut changes, kept, &path);
                }
            }
            EntryKind::Symlink(target) => {
                if escapes(&dir, &target) {
                    return Err(LayerError::LinkEscape { path, target });
                }
                if wanted.wants_link(&path) {
                    keep(&mut nodes, path, Node::Symlink(target))?;
                } else if wanted.wants(&path) != Want::Nothing {
                    replace(&mut nodes, &mut changes, kept, &path);
                }
            }
            EntryKind::Hardlink(target) => {
                // Hard link targets are archive paths, never relative to the link.
                let target = normalise(&target).map_err(|_| LayerError::LinkEscape {
                    path: path.clone(),
                    target: target.clone(),
                })?;
                if wanted.wants(&path) != Want::Nothing {
                    match nodes.get(&target).cloned() {
                        Some(node) => keep(&mut nodes, path, node)?,
                        None => replace(&mut nodes, &mut changes, kept, &path),
                    }
                }
            }
            EntryKind::File => match wanted.wants(&path) {
                Want::Content => {
                    let data = tar.read_data(&path, limits.max_file_bytes)?;
                    keep(&mut nodes, path, Node::File(Arc::new(data)))?;
                }
                Want::Presence => keep(&mut nodes, path, Node::File(Arc::default()))?,
                Want::Extract => {
                    let summary = wanted.extract(&path, &mut tar.data());
                    if let Some(e) = tar.take_broken() {
                        return Err(e.into());
                    }
                    match summary {
                        Some(summary) => keep(&mut nodes, path, Node::File(Arc::new(summary)))?,
                        None => replace(&mut nodes, &mut changes, kept, &path),
                    }
                }
                Want::Nothing => {}
            },
            EntryKind::Other => {
                if wanted.wants(&path) != Want::Nothing {
                    replace(&mut nodes, &mut changes, kept, &path);
                }
            }
        }
    }
    changes.nodes = nodes.into_iter().collect();
    Ok(changes)
}

/// Something not kept was put at `path`: what this layer or a lower one kept there is
/// gone.
fn replace(
    nodes: &mut BTreeMap<String, Node>,
    changes: &mut LayerChanges,
    kept: &AtomicU64,
    path: &str,
) {
    if let Some(Node::File(d)) = nodes.remove(path) {
        kept.fetch_sub(d.len() as u64, AtomicOrdering::Relaxed);
    }
    changes.replaced.insert(changes.paths.hash_one(path));
}

/// A zstd layer: one frame after another (zstd:chunked and pigz-style writers make
/// several), skippable frames skipped, windows bounded as libzstd bounds them.
struct ZstdFrames<R: BufRead> {
    input: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

/// libzstd's default limit for decompression (windowLog 27).
const ZSTD_MAX_WINDOW: u64 = 128 << 20;

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                let done = self.frame.take().map(|f| f.into_inner());
                self.input = done;
            }
            let Some(mut input) = self.input.take() else {
                return Ok(0);
            };
            let head = input.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            // Skippable frames: magic 0x184D2A5?, then a 32-bit length.
            if head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50 {
                let mut header = [0u8; 8];
                input.read_exact(&mut header)?;
                let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                io::copy(&mut (&mut input).take(u64::from(len)), &mut io::sink())?;
                self.input = Some(input);
                continue;
            }
            let frame = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                input,
                ZSTD_MAX_WINDOW,
            )
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("invalid zstd frame: {e}"),
                )
            })?;
            self.frame = Some(frame);
        }
    }
}

/// An archive path as a root-relative path without `.`, `..` or empty parts.
fn normalise(raw: &str) -> Result<String, LayerError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in components(raw) {
        if c == ".." {
            if parts.pop().is_none() {
                return Err(LayerError::Traversal(raw.to_owned()));
            }
        } else {
            parts.push(c);
        }
    }
    Ok(parts.join("/"))
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether a relative link target in `dir` climbs above the root. Absolute targets
/// are resolved from the image's root, so they never leave it.
fn escapes(dir: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth = components(dir).count();
    for c in components(target) {
        if c == ".." {
            if depth == 0 {
                return true;
            }
            depth -= 1;
        } else {
            depth += 1;
        }
    }
    false
}

/// Counts decompressed bytes and stops a layer that expands beyond the limits.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    compressed: u64,
    image: &'a AtomicU64,
    limits: Limits,
    tripped: Option<LayerError>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let image = self.image.fetch_add(n as u64, AtomicOrdering::Relaxed) + n as u64;
        if image > self.limits.max_image_bytes {
            self.tripped = Some(LayerError::TooLarge(self.limits.max_image_bytes));
        } else if self.read > self.limits.expansion_floor
            && self.read / self.compressed > self.limits.max_expansion
        {
            self.tripped = Some(LayerError::Bomb {
                expanded: self.read,
                compressed: self.compressed,
            });
        }
        if self.tripped.is_some() {
            return Err(io::Error::other("layer limit reached"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tar::tests::archive;
    use super::*;
    use std::io::Write;

    struct All;
    impl Wanted for All {
        fn wants(&self, _: &str) -> Want {
            Want::Content
        }
        fn wants_link(&self, _: &str) -> bool {
            true
        }
    }

    fn apply(layers: &[Vec<u8>]) -> Result<ImageFiles, LayerError> {
        let limits = Limits::default();
        let usage = Usage::default();
        let mut fs = ImageFiles::default();
        for l in layers {
            let changes = read_layer(&l[..], l.len() as u64, &usage, &All, &limits)?;
            fs.apply(changes, &limits)?;
        }
        Ok(fs)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("in memory");
        e.finish().expect("in memory")
    }

    /// Extracts `bin/*`: a file whose content starts with `pkg` is summarised as its
    /// content; anything else holds nothing.
    struct Binaries;
    impl Wanted for Binaries {
        fn wants(&self, path: &str) -> Want {
            if path.starts_with("bin/") {
                Want::Extract
            } else {
                Want::Nothing
            }
        }
        fn wants_link(&self, _: &str) -> bool {
            false
        }
        fn extract(&self, _: &str, data: &mut dyn Read) -> Option<Vec<u8>> {
            let mut content = Vec::new();
            data.read_to_end(&mut content).ok()?;
            content.starts_with(b"pkg").then_some(content)
        }
    }

    #[test]
    fn whatever_replaces_an_extracted_file_hides_it() {
        let limits = Limits::default();
        let usage = Usage::default();
        let base = archive(&[
            ("bin/a", b'0', b"pkg a", ""),
            ("bin/b", b'0', b"pkg b", ""),
            ("bin/c", b'0', b"pkg c", ""),
            ("bin/d", b'0', b"pkg d", ""),
            ("bin/e", b'0', b"pkg e", ""),
            ("bin/f", b'0', b"pkg f", ""),
        ]);
        let upper = archive(&[
            ("bin/a", b'0', b"a shell script", ""),
            ("bin/b", b'2', b"", "a"),
            ("bin/c", b'1', b"", "nowhere/c"),
            ("bin/d", b'5', b"", ""),
            ("bin/e", b'3', b"", ""),
            ("bin/x", b'0', b"pkg x", ""),
            ("bin/f", b'1', b"", "bin/x"),
        ]);
        let mut fs = ImageFiles::default();
        for layer in [base, upper] {
            let changes = read_layer(&layer[..], layer.len() as u64, &usage, &Binaries, &limits)
                .expect("valid");
            fs.apply(changes, &limits).expect("within limits");
        }
        let kept: Vec<(&str, &[u8])> = fs.files().map(|(p, d, _)| (p, d.as_slice())).collect();
        // a: a file of nothing; b: a link; c: a hard link to nothing kept; d: a
        // directory; e: a device. f: a hard link to a kept file, kept.
        assert_eq!(kept, [("bin/f", &b"pkg x"[..]), ("bin/x", &b"pkg x"[..])]);
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        let base = archive(&[
            ("etc/os-release", b'0', b"ID=debian", ""),
            (
                "var/lib/dpkg/status.d/openssl",
                b'0',
                b"Package: openssl",
                "",
            ),
            ("var/lib/dpkg/status.d/zlib", b'0', b"Package: zlib", ""),
            ("opt/x/a", b'0', b"a", ""),
        ]);
        let upper = archive(&[
            ("var/lib/dpkg/status.d/.wh.openssl", b'0', b"", ""),
            ("opt/x/.wh..wh..opq", b'0', b"", ""),
            ("opt/x/b", b'0', b"b", ""),
        ]);
        let fs = apply(&[gzip(&base), upper]).expect("valid");
        let names: Vec<String> = fs
            .files_under("var/lib/dpkg/status.d")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["zlib"]);
        assert!(fs.read("opt/x/a").is_none());
        assert_eq!(
            fs.read("opt/x/b").as_deref().map(Vec::as_slice),
            Some(&b"b"[..])
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_image() {
        let layer = archive(&[
            ("usr/lib/os-release", b'0', b"ID=fedora", ""),
            ("etc/os-release", b'2', b"", "../usr/lib/os-release"),
            ("var/lib/rpm", b'2', b"", "/usr/lib/sysimage/rpm"),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite", b'0', b"db", ""),
        ]);
        let fs = apply(&[layer]).expect("valid");
        assert_eq!(
            fs.read("etc/os-release").as_deref().map(Vec::as_slice),
            Some(&b"ID=fedora"[..])
        );
        assert!(fs.read("var/lib/rpm/rpmdb.sqlite").is_some());
    }

    #[test]
    fn hostile_layers_fail_with_a_reason() {
        let traversal = archive(&[("../../etc/passwd", b'0', b"x", "")]);
        assert!(matches!(apply(&[traversal]), Err(LayerError::Traversal(_))));
        let escape = archive(&[("a/b", b'2', b"", "../../../etc/shadow")]);
        assert!(matches!(
            apply(&[escape]),
            Err(LayerError::LinkEscape { .. })
        ));
        let hard = archive(&[("a", b'1', b"", "../outside")]);
        assert!(matches!(apply(&[hard]), Err(LayerError::LinkEscape { .. })));
        let truncated = gzip(&archive(&[("a", b'0', &[1u8; 4000], "")])[..2000]);
        assert!(matches!(
            apply(&[truncated]),
            Err(LayerError::Tar(TarError::Truncated))
        ));
        assert!(matches!(
            apply(&[b"random bytes, not a tar".repeat(40)]),
            Err(LayerError::Tar(TarError::NotTar))
        ));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let limits = Limits {
            expansion_floor: 1 << 20,
            ..Limits::default()
        };
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let tar_header = super::super::tar::tests::header("zeros", b'0', 64 << 20, "");
        e.write_all(&tar_header).expect("in memory");
        for _ in 0..64 {
            e.write_all(&[0u8; 1 << 20]).expect("in memory");
        }
        let bomb = e.finish().expect("in memory");
        let got = read_layer(
            &bomb[..],
            bomb.len() as u64,
            &Usage::default(),
            &All,
            &limits,
        );
        assert!(matches!(got, Err(LayerError::Bomb { .. })), "{got:?}");
    }
}
