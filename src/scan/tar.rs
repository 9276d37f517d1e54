//! A streaming tar reader with limits, for layers that may be hostile.
//!
//! Berth never extracts a layer to disk: the scanner walks the entries and keeps only
//! the few files it reads. General-purpose tar crates read GNU long names and PAX
//! headers into memory without a bound; this reader caps them, reports truncation as
//! such, and never seeks (layers arrive as a decompressing stream).

use std::io::{self, Read};

const BLOCK: usize = 512;
/// Longer paths and link targets are refused (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;
/// Read size when skipping data nobody reads.
const SKIP_BUFFER: usize = 256 * 1024;
/// GNU long names and PAX extended headers larger than this are refused.
pub const MAX_EXTENDED_HEADER: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("the archive is truncated")]
    Truncated,
    #[error("not a tar archive (no valid header at the start)")]
    NotTar,
    #[error("corrupt tar header at byte {0}")]
    CorruptHeader(u64),
    #[error("an extended tar header of {0} bytes is larger than the limit")]
    HugeHeader(u64),
    #[error("entry '{path}' is {size} bytes, more than the {limit} bytes the scanner reads")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TarError::Truncated
        } else {
            TarError::Io(e)
        }
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink(String),
    Hardlink(String),
    /// Devices, FIFOs, sparse files: nothing the scanner reads.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path as the archive spells it (not yet normalised).
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// Reads entries one after the other; the data of an entry not read is skipped.
pub struct TarReader<R> {
    inner: R,
    /// Bytes of the current entry's data (and padding) not consumed yet.
    skip: u64,
    /// Data bytes of the current entry still readable by `read_data`.
    data_left: u64,
    offset: u64,
    started: bool,
    /// Buffer for skipped data, allocated on first use.
    scratch: Vec<u8>,
    /// An error of the stream underneath met while a reader streamed an entry's data,
    /// kept so the walk reports it rather than the reader's own view of it.
    broken: Option<io::Error>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            skip: 0,
            data_left: 0,
            offset: 0,
            started: false,
            scratch: Vec::new(),
            broken: None,
        }
    }

    /// The next entry, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        let mut long_name = None;
        let mut long_link = None;
        let mut pax = Pax::default();
        loop {
            self.skip_rest()?;
            let Some(header) = self.read_header()? else {
                return Ok(None);
            };
            let size = header.size()?;
            self.skip = padded(size);
            self.data_left = size;
            match header.typeflag() {
                b'L' => long_name = Some(self.read_extended(size)?),
                b'K' => long_link = Some(self.read_extended(size)?),
                b'x' => pax = Pax::parse(&self.read_extended(size)?),
                b'g' => {} // global PAX defaults: nothing the scanner needs
                flag => {
                    let path = pax
                        .path
                        .take()
                        .or_else(|| long_name.take().map(|n| trim_nul(&n)))
                        .unwrap_or_else(|| header.path());
                    let link = pax
                        .linkpath
                        .take()
                        .or_else(|| long_link.take().map(|n| trim_nul(&n)))
                        .unwrap_or_else(|| header.link());
                    if path.len() > MAX_PATH || link.len() > MAX_PATH {
                        return Err(TarError::HugeHeader(path.len().max(link.len()) as u64));
                    }
                    let size = pax.size.take().unwrap_or(size);
                    if size != self.data_left {
                        self.skip = padded(size);
                        self.data_left = size;
                    }
                    let kind = match flag {
                        b'0' | 0 | b'7' => EntryKind::File,
                        b'5' => EntryKind::Dir,
                        b'2' => EntryKind::Symlink(link),
                        b'1' => EntryKind::Hardlink(link),
                        _ => EntryKind::Other,
                    };
                    return Ok(Some(Entry { path, kind, size }));
                }
            }
        }
    }

    /// The stream, to learn what it saw.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The current entry's data, which must be at most `limit` bytes.
    pub fn read_data(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, TarError> {
        if self.data_left > limit {
            return Err(TarError::FileTooLarge {
                path: path.to_owned(),
                size: self.data_left,
                limit,
            });
        }
        let len = usize::try_from(self.data_left).map_err(|_| TarError::HugeHeader(limit))?;
        let mut data = vec![0; len];
        self.inner.read_exact(&mut data)?;
        self.offset += self.data_left;
        self.skip -= self.data_left;
        self.data_left = 0;
        Ok(data)
    }

    /// The current entry's data as a stream, for readers that reduce it as it passes
    /// (binaries, archives); what they leave unread is skipped by `next_entry`.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }

    /// The stream's error, if one broke an entry's data while a reader read it.
    pub fn take_broken(&mut self) -> Option<TarError> {
        self.broken.take().map(TarError::from)
    }

    fn read_extended(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENDED_HEADER {
            return Err(TarError::HugeHeader(size));
        }
        self.read_data("(extended header)", MAX_EXTENDED_HEADER)
    }

    /// Skip the rest of the current entry: the bulk of a layer, read in large reads
    /// (the decompressor underneath works best on big buffers).
    fn skip_rest(&mut self) -> Result<(), TarError> {
        if self.skip == 0 {
            return Ok(());
        }
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; SKIP_BUFFER];
        }
        while self.skip > 0 {
            let want = SKIP_BUFFER.min(usize::try_from(self.skip).unwrap_or(SKIP_BUFFER));
            let n = match self.inner.read(&mut self.scratch[..want]) {
                Ok(0) => return Err(TarError::Truncated),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.skip -= n as u64;
            self.offset += n as u64;
        }
        self.data_left = 0;
        Ok(())
    }

    /// The next header block; `None` at an end-of-archive (zero) block or at a clean
    /// end of the stream after at least one entry.
    fn read_header(&mut self) -> Result<Option<Header>, TarError> {
        let mut block = [0u8; BLOCK];
        let n = read_full(&mut self.inner, &mut block)?;
        let at = self.offset;
        self.offset += n as u64;
        if n == 0 && self.started {
            return Ok(None);
        }
        if n < BLOCK {
            return Err(if self.started || n > 0 {
                TarError::Truncated
            } else {
                TarError::NotTar
            });
        }
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let header = Header(block);
        if !header.checksum_ok() {
            return Err(if self.started {
                TarError::CorruptHeader(at)
            } else {
                TarError::NotTar
            });
        }
        self.started = true;
        Ok(Some(header))
    }
}

/// One entry's data, at most its size. An error of the stream underneath is kept in
/// the reader (see `take_broken`); the entry's reader sees only that it failed.
pub struct EntryData<'a, R> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tar = &mut *self.tar;
        if tar.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if tar.broken.is_some() {
            return Err(io::Error::other("the layer's stream failed"));
        }
        let want = buf
            .len()
            .min(usize::try_from(tar.data_left).unwrap_or(usize::MAX));
        let n = match tar.inner.read(&mut buf[..want]) {
            Ok(0) => io::ErrorKind::UnexpectedEof.into(),
            Ok(n) => {
                tar.data_left -= n as u64;
                tar.skip -= n as u64;
                tar.offset += n as u64;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => e,
        };
        let kind = n.kind();
        tar.broken = Some(n);
        Err(io::Error::new(kind, "the layer's stream failed"))
    }
}

/// Read until `buf` is full or the stream ends; the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `size` rounded up to whole blocks; saturating, so a hostile size field cannot wrap
/// (the read then ends as truncated).
fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

fn trim_nul(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

struct Header([u8; BLOCK]);

impl Header {
    fn field(&self, start: usize, len: usize) -> &[u8] {
        &self.0[start..start + len]
    }

    fn typeflag(&self) -> u8 {
        self.0[156]
    }

    fn is_ustar(&self) -> bool {
        self.field(257, 6) == b"ustar\0"
    }

    fn path(&self) -> String {
        let name = trim_nul(self.field(0, 100));
        let prefix = if self.is_ustar() {
            trim_nul(self.field(345, 155))
        } else {
            String::new()
        };
        if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        }
    }

    fn link(&self) -> String {
        trim_nul(self.field(157, 100))
    }

    fn size(&self) -> Result<u64, TarError> {
        numeric(self.field(124, 12)).ok_or(TarError::CorruptHeader(0))
    }

    /// The checksum counts the checksum field as spaces; old tars summed signed bytes.
    fn checksum_ok(&self) -> bool {
        let Some(stored) = numeric(self.field(148, 8)) else {
            return false;
        };
        let (mut unsigned, mut signed) = (0u64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
    }
}

/// An octal field, or GNU's base-256 form (high bit set) for large values.
fn numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// The PAX keys the scanner uses.
#[derive(Default)]
struct Pax {
    path: Option<String>,
    linkpath: Option<String>,
    size: Option<u64>,
}

impl Pax {
    /// Records are `LEN KEY=VALUE\n`, LEN counting the whole record.
    fn parse(data: &[u8]) -> Pax {
        let mut pax = Pax::default();
        let mut rest = data;
        while !rest.is_empty() {
            let Some(space) = rest.iter().position(|&b| b == b' ') else {
                break;
            };
            let Some(len) = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|l| l.parse::<usize>().ok())
            else {
                break;
            };
            if len <= space + 1 || len > rest.len() {
                break;
            }
            let record = &rest[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                let value = trim_nul(&record[eq + 1..]);
                match &record[..eq] {
                    b"path" => pax.path = Some(value),
                    b"linkpath" => pax.linkpath = Some(value),
                    b"size" => pax.size = value.parse().ok(),
                    _ => {}
                }
            }
            rest = &rest[len..];
        }
        pax
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ustar header block for tests.
    pub(crate) fn header(path: &str, flag: u8, size: u64, link: &str) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        let size = format!("{size:011o}");
        h[124..135].copy_from_slice(size.as_bytes());
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    /// An archive of (path, flag, data, link) entries, ended by two zero blocks.
    pub(crate) fn archive(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, flag, data, link) in entries {
            out.extend_from_slice(&header(path, *flag, data.len() as u64, link));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend_from_slice(&[0; 2 * BLOCK]);
        out
    }

    /// Each entry, with its data where the test reads it.
    type Read = Vec<(Entry, Option<Vec<u8>>)>;

    fn entries(bytes: &[u8]) -> Result<Read, TarError> {
        let mut r = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let data = (e.path.ends_with(".txt")).then(|| r.read_data(&e.path, 100));
            out.push((e, data.transpose()?));
        }
        Ok(out)
    }

    #[test]
    fn reads_files_links_and_skips_unread_data() {
        let tar = archive(&[
            ("big.bin", b'0', &[7u8; 1500], ""),
            ("a.txt", b'0', b"hello", ""),
            ("dir/", b'5', b"", ""),
            ("ln", b'2', b"", "../a.txt"),
        ]);
        let got = entries(&tar).expect("valid");
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].1.as_deref(), Some(&b"hello"[..]));
        assert_eq!(got[3].0.kind, EntryKind::Symlink("../a.txt".into()));
    }

    #[test]
    fn long_names_and_pax_paths() {
        let long = "d/".repeat(80) + "f.txt";
        let mut name = long.clone().into_bytes();
        name.push(0);
        let pax_rec = {
            let body = "path=pax/name.txt\n";
            format!("{} {body}", body.len() + 3)
        };
        let tar = archive(&[
            ("././@LongLink", b'L', &name, ""),
            ("short", b'0', b"x", ""),
            ("paxhdr", b'x', pax_rec.as_bytes(), ""),
            ("ignored", b'0', b"y", ""),
        ]);
        let got = entries(&tar).expect("valid");
        assert_eq!(got[0].0.path, long);
        assert_eq!(got[1].0.path, "pax/name.txt");
    }

    #[test]
    fn truncation_garbage_and_huge_headers_are_errors() {
        let tar = archive(&[("a.bin", b'0', &[1u8; 2000], "")]);
        let cut = &tar[..1200];
        assert!(matches!(entries(cut), Err(TarError::Truncated)));
        assert!(matches!(entries(&[9u8; 4096]), Err(TarError::NotTar)));
        assert!(matches!(entries(&[]), Err(TarError::NotTar)));
        let mut huge = header("././@LongLink", b'L', 2 << 20, "").to_vec();
        huge.extend_from_slice(&[0; 512]);
        assert!(matches!(entries(&huge), Err(TarError::HugeHeader(_))));
    }

    #[test]
    fn too_large_files_are_refused_not_allocated() {
        let tar = archive(&[("a.txt", b'0', &[1u8; 200], "")]);
        assert!(matches!(entries(&tar), Err(TarError::FileTooLarge { .. })));
    }
}
