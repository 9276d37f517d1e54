//! The one thing the scanner asks of an ELF file: a section's bytes by name, read from a
//! seekable copy (the section table sits at the file's end). Every offset and size is
//! checked against the file's length before it is used.

use std::io::{Read, Seek, SeekFrom};

const MAX_SECTIONS: u64 = 1 << 16;
const MAX_NAMES: u64 = 1 << 20;

struct Layout {
    wide: bool,
    little: bool,
}

impl Layout {
    fn int(&self, b: &[u8], at: usize, len: usize) -> Option<u64> {
        let bytes = b.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if self.little {
                bytes[len - 1 - i]
            } else {
                bytes[i]
            };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    }

    /// A width that is 4 bytes in ELF32 and 8 in ELF64.
    fn word(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }
}

/// The bytes of section `name`, if the file has it and it is at most `max` bytes.
pub fn section<F: Read + Seek>(file: &mut F, len: u64, name: &str, max: u64) -> Option<Vec<u8>> {
    let mut header = [0u8; 64];
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let l = Layout {
        wide: header[4] == 2,
        little: header[5] == 1,
    };
    let (shoff, entsize, count, names_index) = if l.wide {
        (
            l.int(&header, 0x28, 8)?,
            l.int(&header, 0x3a, 2)?,
            l.int(&header, 0x3c, 2)?,
            l.int(&header, 0x3e, 2)?,
        )
    } else {
        (
            l.int(&header, 0x20, 4)?,
            l.int(&header, 0x2e, 2)?,
            l.int(&header, 0x30, 2)?,
            l.int(&header, 0x32, 2)?,
        )
    };
    let min_entry = if l.wide { 64 } else { 40 };
    if count == 0 || count > MAX_SECTIONS || entsize < min_entry || names_index >= count {
        return None;
    }
    let table_len = entsize.checked_mul(count)?;
    if shoff.checked_add(table_len)? > len {
        return None;
    }
    let mut table = vec![0u8; usize::try_from(table_len).ok()?];
    file.seek(SeekFrom::Start(shoff)).ok()?;
    file.read_exact(&mut table).ok()?;
    let entry = |i: u64| -> Option<(u64, u64, u64)> {
        let at = usize::try_from(i * entsize).ok()?;
        let w = l.word();
        // sh_name, then (after sh_type, sh_flags, sh_addr) sh_offset and sh_size.
        let name = l.int(&table, at, 4)?;
        let offset_at = at + 8 + 2 * w;
        Some((
            name,
            l.int(&table, offset_at, w)?,
            l.int(&table, offset_at + w, w)?,
        ))
    };
    let read_at = |file: &mut F, offset: u64, size: u64| -> Option<Vec<u8>> {
        if offset.checked_add(size)? > len {
            return None;
        }
        let mut out = vec![0u8; usize::try_from(size).ok()?];
        file.seek(SeekFrom::Start(offset)).ok()?;
        file.read_exact(&mut out).ok()?;
        Some(out)
    };
    let (_, names_offset, names_size) = entry(names_index)?;
    let names = read_at(file, names_offset, names_size.min(MAX_NAMES))?;
    for i in 0..count {
        let (name_at, offset, size) = entry(i)?;
        let Some(rest) = usize::try_from(name_at).ok().and_then(|at| names.get(at..)) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return if size > max {
                None
            } else {
                read_at(file, offset, size)
            };
        }
    }
    None
}
