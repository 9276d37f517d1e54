//! Appending a large body to an upload's staging file.
//!
//! Large bodies are written with direct I/O (`O_DIRECT`) where the filesystem allows it.
//! Measured on this project's virtual machines, copying a gigabyte into fresh page-cache
//! pages cost more CPU than hashing it, and the fdatasync at commit then had the whole
//! gigabyte left to write; direct writes go from our buffers to the disk, in parallel
//! with hashing, and leave the commit little to flush. Distribution, which never
//! fsyncs, still pays the page-cache copy.
//!
//! Direct I/O needs block-aligned offsets, lengths and memory. Bytes are gathered in
//! aligned buffers written by a helper thread while the next one fills. The unaligned
//! parts — the start of an append to a file whose length is not a multiple of the block,
//! and the end of the body — go through the page cache, as does everything where direct
//! I/O is refused (e.g. tmpfs): the commit's fdatasync covers both kinds alike.
//!
//! The file grows strictly in order: a buffered write past a direct one waits until the
//! direct write has returned (`drain`). Otherwise a process killed in between leaves a file whose
//! length covers a hole, and an upload resumed from that length completes into a blob
//! that does not match its digest.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};

use bytes::Bytes;

/// Alignment satisfying every block size direct I/O may ask for (512 B to 4 KiB).
const ALIGN: usize = 4096;
/// One direct write: large enough to run the disk at full speed.
const BUFFER: usize = 2 * 1024 * 1024;
/// Buffers per upload: one filling while the others are written (bounds memory).
const BUFFERS: usize = 3;

/// A block-aligned buffer, built without `unsafe`: a slightly larger vector, used from
/// its first aligned byte. Moving it between threads does not move its bytes.
struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    filled: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let mem = vec![0u8; BUFFER + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            mem,
            start,
            filled: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.filled]
    }

    /// Copy as much of `bytes` as fits; returns how much did.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BUFFER - self.filled);
        let at = self.start + self.filled;
        self.mem[at..at + n].copy_from_slice(&bytes[..n]);
        self.filled += n;
        n
    }

    fn is_full(&self) -> bool {
        self.filled == BUFFER
    }
}

/// What the helper thread hands back: the buffer (for reuse or a buffered retry), where
/// it went, and how the direct write went.
type Written = (AlignedBuf, u64, io::Result<()>);

/// Append the batches arriving on `rx` to the file at `path`, calling `each` on every
/// chunk in order (the running hash) before it is written.
pub(super) fn append(
    path: &Path,
    rx: tokio::sync::mpsc::Receiver<Vec<Bytes>>,
    each: impl FnMut(&[u8]),
) -> io::Result<()> {
    append_with(path, rx, each, |file, bytes, offset| {
        file.write_all_at(bytes, offset)
    })
}

/// One direct write; a parameter so tests can make the disk fail.
type DirectWrite = fn(&File, &[u8], u64) -> io::Result<()>;

fn append_with(
    path: &Path,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Bytes>>,
    mut each: impl FnMut(&[u8]),
    direct_write: DirectWrite,
) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let end = file.metadata()?.len();
    // Opened separately: the flag is per open file, and the unaligned parts need a
    // descriptor without it.
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok();
    let Some(direct) = direct else {
        let mut offset = end;
        while let Some(batch) = rx.blocking_recv() {
            for chunk in &batch {
                each(chunk);
                file.write_all_at(chunk, offset)?;
                offset += chunk.len() as u64;
            }
        }
        return Ok(());
    };
    std::thread::scope(|scope| {
        let (to_disk, jobs) = sync_channel::<(AlignedBuf, u64)>(BUFFERS);
        let (done, written) = channel::<Written>();
        scope.spawn(move || write_direct(&direct, direct_write, jobs, done));
        let mut writer = AlignedWriter::new(&file, end, to_disk, written);
        let result = (|| {
            while let Some(batch) = rx.blocking_recv() {
                for chunk in &batch {
                    each(chunk);
                    writer.write(chunk)?;
                }
            }
            Ok(())
        })();
        // Whatever happened, what was accepted is written before returning: the file
        // length is the truth about what is staged.
        let finished = writer.finish();
        result.and(finished)
    })
}

/// The helper thread: direct writes, in order, until the writer hangs up.
fn write_direct(
    file: &File,
    direct_write: DirectWrite,
    jobs: Receiver<(AlignedBuf, u64)>,
    done: std::sync::mpsc::Sender<Written>,
) {
    for (buf, offset) in jobs {
        let result = direct_write(file, buf.data(), offset);
        if done.send((buf, offset, result)).is_err() {
            return;
        }
    }
}

/// Splits a byte stream into an unaligned head (written buffered), aligned buffers
/// (written directly by the helper thread) and an unaligned tail (buffered).
struct AlignedWriter<'f> {
    file: &'f File,
    /// Bytes still to write through the page cache before the next block boundary.
    head: usize,
    /// File offset of the current buffer's first byte (block-aligned after the head).
    offset: u64,
    current: AlignedBuf,
    in_flight: usize,
    /// Dropping it (with the writer) ends the helper thread.
    to_disk: SyncSender<(AlignedBuf, u64)>,
    written: Receiver<Written>,
    /// Set when the filesystem refused a direct write: the rest goes buffered.
    refused: bool,
}

impl<'f> AlignedWriter<'f> {
    fn new(
        file: &'f File,
        end: u64,
        to_disk: SyncSender<(AlignedBuf, u64)>,
        written: Receiver<Written>,
    ) -> AlignedWriter<'f> {
        let misalignment = (end % ALIGN as u64) as usize;
        AlignedWriter {
            file,
            head: (ALIGN - misalignment) % ALIGN,
            offset: end,
            current: AlignedBuf::new(),
            in_flight: 0,
            to_disk,
            written,
            refused: false,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.head > 0 {
            let n = self.head.min(bytes.len());
            // Before the first buffer, so no direct write is in flight below it.
            self.file.write_all_at(&bytes[..n], self.offset)?;
            self.offset += n as u64;
            self.head -= n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            let n = self.current.fill(bytes);
            bytes = &bytes[n..];
            if self.current.is_full() {
                self.submit()?;
            }
        }
        Ok(())
    }

    /// Hand the full current buffer to the helper thread and take an empty one.
    fn submit(&mut self) -> io::Result<()> {
        let offset = self.offset;
        self.offset += self.current.filled as u64;
        if self.refused {
            self.drain()?;
            self.file.write_all_at(self.current.data(), offset)?;
            self.current.filled = 0;
            return Ok(());
        }
        // Up to BUFFERS buffers exist; past that, the oldest write's buffer is reused.
        let next = if self.in_flight + 1 < BUFFERS {
            AlignedBuf::new()
        } else {
            self.reclaim()?
        };
        let full = std::mem::replace(&mut self.current, next);
        self.to_disk
            .send((full, offset))
            .map_err(|_| io::Error::other("the direct writer thread stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Wait for one direct write and return its (now empty) buffer.
    fn reclaim(&mut self) -> io::Result<AlignedBuf> {
        let (mut buf, offset, result) = self
            .written
            .recv()
            .map_err(|_| io::Error::other("the direct writer thread stopped"))?;
        self.in_flight -= 1;
        if let Err(e) = result {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            // Direct I/O refused after all (e.g. a stricter alignment): buffered from now.
            self.refused = true;
            self.file.write_all_at(buf.data(), offset)?;
        }
        buf.filled = 0;
        Ok(buf)
    }

    /// Wait for every direct write in flight (all below the next buffered write, which
    /// so never extends the file past a gap); the first error is returned after all.
    fn drain(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        while self.in_flight > 0 {
            let reclaimed = self.reclaim().map(drop);
            result = result.and(reclaimed);
        }
        result
    }

    /// Write what remains, after every direct write.
    fn finish(mut self) -> io::Result<()> {
        self.drain()?;
        // The aligned part could go direct, but this is at most one buffer: the page
        // cache is as fast for it and keeps this path simple.
        match self.current.data() {
            [] => Ok(()),
            tail => self.file.write_all_at(tail, self.offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(path: &Path, chunks: Vec<Vec<u8>>) -> io::Result<Vec<u8>> {
        let (tx, rx) = queued(chunks);
        drop(tx);
        let mut seen = Vec::new();
        append(path, rx, |c| seen.extend_from_slice(c))?;
        Ok(seen)
    }

    type Queue = (
        tokio::sync::mpsc::Sender<Vec<Bytes>>,
        tokio::sync::mpsc::Receiver<Vec<Bytes>>,
    );

    fn queued(chunks: Vec<Vec<u8>>) -> Queue {
        let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
        for c in chunks {
            tx.try_send(vec![Bytes::from(c)]).expect("queue has room");
        }
        (tx, rx)
    }

    fn direct_io_works(dir: &Path) -> bool {
        let probe = dir.join("probe");
        std::fs::write(&probe, b"").expect("probe");
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
            .is_ok()
    }

    #[test]
    fn a_failed_direct_write_leaves_no_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            direct_io_works(dir.path()),
            "the test needs a directory allowing O_DIRECT"
        );
        let path = dir.path().join("upload");
        let before = pattern(100, 1);
        std::fs::write(&path, &before).expect("write");
        // A buffered head, one direct buffer (which fails), a buffered tail.
        let body = pattern(ALIGN - 100 + BUFFER + 10, 2);
        let (tx, rx) = queued(vec![body.clone()]);
        drop(tx);
        let failing: DirectWrite = |_, _, _| Err(io::Error::from_raw_os_error(libc::EIO));
        let err = append_with(&path, rx, |_| {}, failing).expect_err("the disk failed");
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        // The file length is what a resumed upload continues from: everything below it
        // must be what was sent, so the tail past the failed buffer is not written.
        let staged = std::fs::read(&path).expect("read");
        let sent: Vec<u8> = before.iter().chain(&body).copied().collect();
        assert_eq!(
            staged.len(),
            ALIGN,
            "the head is kept, nothing past the failed write"
        );
        assert_eq!(staged, sent[..staged.len()]);
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn appends_aligned_and_unaligned_parts_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("upload");
        // An unaligned existing length, chunks that straddle buffers, an unaligned end.
        let before = pattern(1000, 1);
        std::fs::write(&path, &before).expect("write");
        let chunks = vec![
            pattern(3 * 1024 * 1024 + 17, 2),
            pattern(5, 3),
            pattern(BUFFER * 2, 4),
            pattern(4095, 5),
        ];
        let expected: Vec<u8> = before
            .iter()
            .chain(chunks.iter().flatten())
            .copied()
            .collect();
        let seen = feed(&path, chunks.clone()).expect("append");
        assert_eq!(seen, chunks.concat(), "every chunk is seen once, in order");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        // A second append starts at the new, unaligned end.
        let more = vec![pattern(BUFFER + 1, 6)];
        feed(&path, more.clone()).expect("append again");
        let expected: Vec<u8> = expected.into_iter().chain(more.concat()).collect();
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }
}
