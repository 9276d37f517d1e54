//! Java archives (jar, war, ear): the Maven coordinates in each
//! `META-INF/maven/GROUP/ARTIFACT/pom.properties`, in the archive and in the archives
//! it nests (Spring Boot's `BOOT-INF/lib/*.jar`, a war's `WEB-INF/lib`).
//!
//! A zip's directory sits at its end, and a layer is a stream: the archive is walked
//! by its local headers instead, each entry's data read or skipped as it passes.
//! Deflated entries end themselves; a stored entry whose size only its trailing data
//! descriptor gives cannot be walked past, and the walk stops there. Only what is read
//! is inflated (Maven properties, nested archives, and entries whose size is not known
//! beforehand), under a budget the caller shares between all of a scan's archives, so
//! zip bombs inside jars cost bounded time.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
/// Flag: sizes and CRC follow the data, in a descriptor.
const HAS_DESCRIPTOR: u16 = 0x8;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// Archives inside archives are read this deep.
const MAX_DEPTH: u32 = 2;
const MAX_PROPERTIES: u64 = 64 * 1024;
/// Bytes a scan may inflate from all the archives of an image, nested ones included.
pub const SCAN_INFLATE_BUDGET: u64 = 2 << 30;

pub fn is_archive(path: &str) -> bool {
    let lower = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    [".jar", ".war", ".ear"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// ("group:artifact", version) of each Maven artifact the archive holds; `budget` is
/// what may still be inflated (shared by a scan's archives, and spent here).
pub fn read(data: &mut dyn Read, budget: &AtomicU64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut reader = BufReader::with_capacity(64 * 1024, data);
    // Content errors end the walk with what was found so far.
    let _ = walk(&mut reader, 0, budget, &mut out);
    out
}

/// Inflated bytes, counted against the budget.
struct Inflated<'a, R> {
    inner: R,
    budget: &'a AtomicU64,
}

impl<R: Read> Read for Inflated<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let spent = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n as u64)
            });
        if spent.is_err() {
            self.budget.store(0, Ordering::Relaxed);
            return Err(io::Error::other(
                "archives inflate beyond the scanner's budget",
            ));
        }
        Ok(n)
    }
}

fn wanted(name: &str, depth: u32) -> bool {
    (name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties"))
        || (is_archive(name) && depth < MAX_DEPTH)
}

fn walk(
    r: &mut dyn BufRead,
    depth: u32,
    budget: &AtomicU64,
    out: &mut Vec<(String, String)>,
) -> io::Result<()> {
    loop {
        let mut sig = [0u8; 4];
        if r.read_exact(&mut sig).is_err() || u32::from_le_bytes(sig) != LOCAL_HEADER {
            // The central directory, or the end.
            return Ok(());
        }
        let mut h = [0u8; 26];
        r.read_exact(&mut h)?;
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (flags, method) = (u16_at(2), u16_at(4));
        let mut compressed = u64::from(u32_at(14));
        let mut name = vec![0u8; usize::from(u16_at(22))];
        r.read_exact(&mut name)?;
        let mut extra = vec![0u8; usize::from(u16_at(24))];
        r.read_exact(&mut extra)?;
        let zip64 = zip64_sizes(&extra);
        if let Some((_, c)) = zip64 {
            compressed = c;
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        let descriptor = flags & HAS_DESCRIPTOR != 0;
        let sized = !descriptor || compressed > 0;
        let read = wanted(&name, depth);
        match (method, sized, read) {
            (STORED, true, true) => {
                entry(&name, &mut (&mut *r).take(compressed), depth, budget, out)?;
            }
            (DEFLATED, true, true) => {
                let mut limited = (&mut *r).take(compressed);
                let mut inflated = Inflated {
                    inner: flate2::bufread::DeflateDecoder::new(&mut limited),
                    budget,
                };
                entry(&name, &mut inflated, depth, budget, out)?;
                // Whatever the decoder left of the entry (nothing, if well formed).
                io::copy(&mut limited, &mut io::sink())?;
            }
            // Only the deflate stream's own end says where the entry ends.
            (DEFLATED, false, _) => {
                let mut inflated = Inflated {
                    inner: flate2::bufread::DeflateDecoder::new(&mut *r),
                    budget,
                };
                entry(&name, &mut inflated, depth, budget, out)?;
            }
            // Not read: skipped as it is stored, not inflated.
            (_, true, _) => {
                io::copy(&mut (&mut *r).take(compressed), &mut io::sink())?;
            }
            (_, false, _) => return Ok(()),
        }
        if descriptor {
            skip_descriptor(r, zip64.is_some())?;
        }
    }
}

/// Read one entry's data: Maven properties, or a nested archive; the rest is drained
/// so the walk continues after it.
fn entry(
    name: &str,
    data: &mut dyn Read,
    depth: u32,
    budget: &AtomicU64,
    out: &mut Vec<(String, String)>,
) -> io::Result<()> {
    if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
        let mut text = String::new();
        data.take(MAX_PROPERTIES).read_to_string(&mut text)?;
        out.extend(coordinates(&text));
    } else if is_archive(name) && depth < MAX_DEPTH {
        let mut nested = BufReader::with_capacity(64 * 1024, &mut *data);
        // A broken nested archive ends its own walk, not the outer one's.
        let _ = walk(&mut nested, depth + 1, budget, out);
    }
    io::copy(data, &mut io::sink())?;
    Ok(())
}

fn coordinates(properties: &str) -> Option<(String, String)> {
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in properties.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "groupId" => group = Some(value),
            "artifactId" => artifact = Some(value),
            "version" => version = Some(value),
            _ => {}
        }
    }
    let (g, a, v) = (group?, artifact?, version?);
    if g.is_empty() || a.is_empty() || v.is_empty() {
        return None;
    }
    Some((format!("{g}:{a}"), v.to_owned()))
}

/// Sizes from a Zip64 extra field: (uncompressed, compressed).
fn zip64_sizes(extra: &[u8]) -> Option<(u64, u64)> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len)?;
        if id == 0x0001 && body.len() >= 16 {
            let at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&body[i..i + 8]);
                u64::from_le_bytes(b)
            };
            return Some((at(0), at(8)));
        }
        rest = &rest[4 + len..];
    }
    None
}

/// CRC and sizes after the data, with or without their signature.
fn skip_descriptor(r: &mut dyn BufRead, zip64: bool) -> io::Result<()> {
    let mut first = [0u8; 4];
    r.read_exact(&mut first)?;
    let sizes = if zip64 { 16 } else { 8 };
    let rest = if u32::from_le_bytes(first) == DESCRIPTOR {
        4 + sizes
    } else {
        sizes
    };
    io::copy(&mut (&mut *r).take(rest), &mut io::sink())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn jar(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            w.start_file(*name, options).expect("entry");
            w.write_all(data).expect("data");
        }
        w.finish().expect("zip").into_inner()
    }

    #[test]
    fn reads_maven_coordinates_in_nested_archives() {
        let props = b"#Generated\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n";
        let inner = jar(
            &[
                ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
                (
                    "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
                    props,
                ),
            ],
            zip::CompressionMethod::Deflated,
        );
        let outer = jar(
            &[
                ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
                ("BOOT-INF/lib/log4j-core-2.14.1.jar", &inner),
                (
                    "META-INF/maven/com.example/app/pom.properties",
                    b"groupId=com.example\nartifactId=app\nversion=1.0\n",
                ),
            ],
            zip::CompressionMethod::Stored,
        );
        assert_eq!(
            read(&mut &outer[..], &AtomicU64::new(SCAN_INFLATE_BUDGET)),
            vec![
                (
                    "org.apache.logging.log4j:log4j-core".into(),
                    "2.14.1".into()
                ),
                ("com.example:app".into(), "1.0".into()),
            ]
        );
        assert!(read(
            &mut &b"PK\x03\x04garbage"[..],
            &AtomicU64::new(SCAN_INFLATE_BUDGET)
        )
        .is_empty());
        // A spent budget stops inflation: the nested jar's deflated properties are not
        // read, the outer archive's stored ones still are.
        let budget = AtomicU64::new(10);
        assert_eq!(
            read(&mut &outer[..], &budget),
            vec![("com.example:app".into(), "1.0".into())]
        );
        assert_eq!(budget.load(Ordering::Relaxed), 0);
        // A bomb inside the archive: its entry is skipped as stored, never inflated,
        // and the properties after it are still read.
        let zeros = vec![0u8; 64 << 20];
        let bomb = jar(
            &[
                ("zeros.bin", &zeros),
                (
                    "META-INF/maven/g/a/pom.properties",
                    b"groupId=g\nartifactId=a\nversion=1\n",
                ),
            ],
            zip::CompressionMethod::Deflated,
        );
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            read(&mut &bomb[..], &AtomicU64::new(SCAN_INFLATE_BUDGET)),
            vec![("g:a".into(), "1".into())]
        );
        assert!(is_archive("app/lib/x.JAR"));
    }
}
