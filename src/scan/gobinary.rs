//! Go binaries' build information: the Go toolchain that built them (reported as the
//! module `stdlib`, as the Go vulnerability database names it) and the module and
//! version of each dependency compiled in.
//!
//! The linker writes a 32-byte header starting `\xff Go buildinf:` in the
//! `.go.buildinfo` section; since Go 1.18 the toolchain version and the module list
//! follow it inline, each as a varint length and bytes. The binary streams past once:
//! the header is found by searching the stream (no section table is needed, which in
//! ELF sits at the end), and only a bounded window after it is kept. Binaries built by
//! Go before 1.18 keep pointers instead of the strings and are not read.

use std::io::Read;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
/// Flag: version and module strings follow the header inline (Go 1.18+).
const INLINE: u8 = 0x2;
/// Bound on the build information kept after the header.
const MAX_INFO: u64 = 4 << 20;
const ELF: &[u8] = b"\x7fELF";

/// What a binary's build information says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// `go1.22.3`.
    pub go_version: String,
    /// (module path, version) of the main module (if versioned) and each dependency,
    /// replacements applied.
    pub modules: Vec<(String, String)>,
}

/// The build information of an ELF Go binary; `None` for anything else.
pub fn read(data: &mut dyn Read) -> Option<BuildInfo> {
    let mut head = [0u8; 4];
    data.read_exact(&mut head).ok()?;
    if head != ELF {
        return None;
    }
    let mut search = Search::new();
    search.feed(&head);
    let mut chunk = vec![0u8; 256 * 1024];
    while !search.is_done() {
        let n = data.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        search.feed(&chunk[..n]);
    }
    search.finish()
}

/// The search for the build information header in a stream fed chunk by chunk: the
/// bytes from the header on (bounded) are kept once it is seen. As in Go's own reader,
/// only a header at a 16-byte aligned offset counts, and one that does not look like
/// build information (a binary that links `debug/buildinfo` holds the magic as a
/// string constant before the real header) is passed over.
pub struct Search {
    finder: memchr::memmem::Finder<'static>,
    /// Before the header: the bytes not yet searched to the end, in case the header
    /// straddles two chunks. After: the bytes from the header on.
    window: Vec<u8>,
    /// The stream offset of `window[0]`.
    window_at: u64,
    found: bool,
}

impl Default for Search {
    fn default() -> Self {
        Search::new()
    }
}

/// Bytes after the magic needed to judge a candidate.
const PROBE: usize = HEADER + 2 + 2;

impl Search {
    pub fn new() -> Search {
        Search {
            finder: memchr::memmem::Finder::new(MAGIC),
            window: Vec::new(),
            window_at: 0,
            found: false,
        }
    }

    /// Whether the header was found.
    pub fn is_found(&self) -> bool {
        self.found
    }

    /// Whether more bytes would change nothing.
    pub fn is_done(&self) -> bool {
        self.found && self.window.len() as u64 >= MAX_INFO
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            let room = usize::try_from(MAX_INFO).unwrap_or(usize::MAX);
            let room = room.saturating_sub(self.window.len());
            self.window
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            return;
        }
        self.window.extend_from_slice(chunk);
        let mut from = 0;
        while let Some(i) = self.finder.find(&self.window[from..]).map(|i| from + i) {
            if !(self.window_at + i as u64).is_multiple_of(16) {
                from = i + 1;
                continue;
            }
            if self.window.len() - i < PROBE {
                // Judge it when more bytes have come.
                self.advance(i);
                return;
            }
            if plausible(&self.window[i..]) {
                self.advance(i);
                self.found = true;
                return;
            }
            from = i + 1;
        }
        let keep = self.window.len().saturating_sub(MAGIC.len() - 1);
        self.advance(keep);
    }

    /// Drop the window's first `n` bytes.
    fn advance(&mut self, n: usize) {
        self.window.drain(..n);
        self.window_at += n as u64;
    }

    pub fn finish(self) -> Option<BuildInfo> {
        if self.found {
            parse(&self.window)
        } else {
            None
        }
    }
}

/// Whether bytes starting with the magic look like Go 1.18+ build information: a
/// pointer size of 4 or 8, inline strings, and a version string starting `go`.
fn plausible(at: &[u8]) -> bool {
    let (Some(&ptr), Some(&flags)) = (at.get(14), at.get(15)) else {
        return false;
    };
    if !(ptr == 4 || ptr == 8) || flags & INLINE == 0 {
        return false;
    }
    let Some(rest) = at.get(HEADER..) else {
        return false;
    };
    match uvarint(rest) {
        Some((len, used)) => len > 1 && rest.get(used..used + 2) == Some(b"go"),
        None => false,
    }
}

fn parse(info: &[u8]) -> Option<BuildInfo> {
    let flags = *info.get(15)?;
    if flags & INLINE == 0 {
        return None;
    }
    let mut rest = info.get(HEADER..)?;
    let version = take_string(&mut rest)?;
    let modinfo = take_string(&mut rest)?;
    // The module list is framed by 16-byte sentinels.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let go_version = String::from_utf8_lossy(version).into_owned();
    if !go_version.starts_with("go") {
        return None;
    }
    Some(BuildInfo {
        go_version,
        modules: modules(&String::from_utf8_lossy(modinfo)),
    })
}

fn take_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, used) = uvarint(rest)?;
    let len = usize::try_from(len).ok()?;
    let s = rest.get(used..used.checked_add(len)?)?;
    *rest = &rest[used + len..];
    Some(s)
}

fn uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// `mod`/`dep` lines, each optionally followed by a `=>` replacement line.
fn modules(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] => out.push(((*path).into(), (*version).into())),
            // A replacement by another module and version; one by a local directory
            // has no version and the required version stays what was asked for.
            ["=>", path, version, ..] if !version.is_empty() => {
                if let Some(last) = out.last_mut() {
                    *last = ((*path).into(), (*version).into());
                }
            }
            _ => {}
        }
    }
    out.retain(|(_, v)| v != "(devel)" && !v.is_empty());
    out
}

/// The Go vulnerability database's version of a toolchain (`go1.21rc2` → `1.21.0-rc.2`,
/// `go1.19` → `1.19.0`); `None` for development builds.
pub fn stdlib_version(go_version: &str) -> Option<String> {
    let v = go_version.split_whitespace().next()?.strip_prefix("go")?;
    let (release, pre) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&v[..i], Some(&v[i..])),
        None => (v, None),
    };
    let mut parts: Vec<&str> = release.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let mut out = parts.join(".");
    if let Some(pre) = pre {
        let digits = pre.find(|c: char| c.is_ascii_digit())?;
        out.push_str(&format!("-{}.{}", &pre[..digits], &pre[digits..]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = n as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn binary(go: &str, modinfo: &str, padding: usize) -> Vec<u8> {
        let mut b = ELF.to_vec();
        b.extend(vec![0u8; padding]);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&[8, INLINE]);
        b.extend(vec![0u8; 16]);
        b.extend(varint(go.len()));
        b.extend_from_slice(go.as_bytes());
        let framed = format!("{}{modinfo}{}", "0".repeat(16), "1".repeat(16));
        b.extend(varint(framed.len()));
        b.extend_from_slice(framed.as_bytes());
        b.extend(vec![0u8; 100]);
        b
    }

    #[test]
    fn reads_toolchain_and_modules_across_chunk_boundaries() {
        let modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n\
                       dep\tgolang.org/x/text\tv0.3.7\th1:abc=\n\
                       dep\tgithub.com/a/b\tv1.0.0\th1:x=\n=>\tgithub.com/fork/b\tv1.0.1\th1:y=\n\
                       dep\tgithub.com/c/d\tv2.0.0\th1:z=\n=>\t./local\t\t\n\
                       build\t-compiler=gc\n";
        // The header at 16-byte aligned offsets (the ELF magic is 4 bytes).
        for padding in [12, 256 * 1024 - 4, 700_012] {
            let b = binary("go1.19.8", modinfo, padding);
            let info = read(&mut &b[..]).expect("build info");
            assert_eq!(info.go_version, "go1.19.8");
            assert_eq!(
                info.modules,
                vec![
                    ("golang.org/x/text".into(), "v0.3.7".into()),
                    ("github.com/fork/b".into(), "v1.0.1".into()),
                    ("github.com/c/d".into(), "v2.0.0".into()),
                ]
            );
        }
        assert_eq!(read(&mut &b"#!/bin/sh\necho hi\n"[..]), None);
        // A binary that links debug/buildinfo holds the magic as a string constant
        // (aligned or not) before its own header: those are passed over.
        let mut decoy = ELF.to_vec();
        decoy.extend(vec![0u8; 12]);
        decoy.extend_from_slice(MAGIC);
        decoy.extend_from_slice(b"not build info, a string table");
        decoy.extend(vec![0u8; 3]);
        decoy.extend_from_slice(MAGIC);
        let real = binary("go1.22.1", modinfo, 0);
        let pad = (16 - decoy.len() % 16) % 16;
        decoy.extend(vec![0u8; pad]);
        decoy.extend_from_slice(&real[4..]);
        let info = read(&mut &decoy[..]).expect("the real header");
        assert_eq!(info.go_version, "go1.22.1");
        let mut truncated = binary("go1.19.8", "dep\ta\tv1.0.0\t\n", 10);
        truncated.truncate(60);
        assert_eq!(read(&mut &truncated[..]), None);
    }

    #[test]
    fn toolchain_versions_as_the_go_database_writes_them() {
        assert_eq!(stdlib_version("go1.19.8").as_deref(), Some("1.19.8"));
        assert_eq!(stdlib_version("go1.19").as_deref(), Some("1.19.0"));
        assert_eq!(stdlib_version("go1.21rc2").as_deref(), Some("1.21.0-rc.2"));
        assert_eq!(
            stdlib_version("go1.22.1 X:boringcrypto").as_deref(),
            Some("1.22.1")
        );
        assert_eq!(stdlib_version("devel go1.23-abc"), None);
    }
}
