//! Executables, in one pass: what built an ELF file. A Go binary's build information is
//! searched for as the file streams past (gobinary.rs). A Rust binary built with `cargo
//! auditable` lists its crates in a section (auditable.rs), and ELF's section table is
//! at the file's end, where a stream arrives too late: so a file of at most 64 MiB is
//! also copied, as it streams, to an unlinked temporary file, and its section is read
//! from there once the file has passed.

use std::fs::File;
use std::io::{Read, Seek, Write};

use super::{auditable, elf, gobinary};

/// Larger executables are searched for Go's header only.
const MAX_SPOOLED: u64 = 64 << 20;
const CHUNK: usize = 256 * 1024;

pub enum Built {
    Go(gobinary::BuildInfo),
    /// Registry crates (name, version) of an auditable Rust binary.
    Rust(Vec<(String, String)>),
}

pub fn read(data: &mut dyn Read) -> Option<Built> {
    let mut head = [0u8; 4];
    data.read_exact(&mut head).ok()?;
    if &head != b"\x7fELF" {
        return None;
    }
    let mut go = gobinary::Search::new();
    let mut spool = Spool::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut pending: &[u8] = &head;
    loop {
        go.feed(pending);
        if !go.is_found() {
            spool.write(pending);
        } else if go.is_done() {
            break;
        }
        let n = data.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        pending = &chunk[..n];
    }
    if go.is_found() {
        return go.finish().map(Built::Go);
    }
    let (mut file, len) = spool.finish()?;
    let section = elf::section(
        &mut file,
        len,
        auditable::SECTION,
        auditable::MAX_COMPRESSED,
    )?;
    let crates = auditable::parse(&section);
    (!crates.is_empty()).then_some(Built::Rust(crates))
}

/// The copy of a file as it streams, given up past `MAX_SPOOLED` or on any error.
struct Spool {
    file: Option<File>,
    len: u64,
}

impl Spool {
    fn new() -> Spool {
        Spool { file: None, len: 0 }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.len > MAX_SPOOLED {
            return;
        }
        self.len += bytes.len() as u64;
        if self.len > MAX_SPOOLED {
            self.file = None;
            return;
        }
        if self.file.is_none() && self.len == bytes.len() as u64 {
            self.file = unlinked_file();
        }
        let ok = match &mut self.file {
            Some(f) => f.write_all(bytes).is_ok(),
            None => false,
        };
        if !ok {
            self.file = None;
            self.len = MAX_SPOOLED + 1;
        }
    }

    fn finish(self) -> Option<(File, u64)> {
        let mut file = self.file?;
        file.rewind().ok()?;
        Some((file, self.len))
    }
}

/// A temporary file that nothing can see: removed as soon as it is opened, gone when
/// closed (even if the process dies).
fn unlinked_file() -> Option<File> {
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).ok()?;
    let path = std::env::temp_dir().join(format!("berth-scan-{}", hex::encode(nonce)));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ok()?;
    std::fs::remove_file(&path).ok()?;
    Some(file)
}
