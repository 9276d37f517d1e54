//! A SHA-256 whose progress can be stored and resumed in another process: the eight
//! state words, the number of bytes hashed, and the unhashed tail (under one block).
//! `sha2` 0.10 cannot serialize its hasher, so this drives its block function
//! (`compress256`) itself. A chunked upload to object storage keeps this in the metadata
//! store between PATCHes, so the next PATCH may land on any node.

use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;
/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// The stored form: version, 8 words, the length, the tail's length, the tail.
const VERSION: u8 = 1;
const FIXED: usize = 1 + 32 + 8 + 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256State {
    words: [u32; 8],
    len: u64,
    tail: Vec<u8>,
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State::new()
    }
}

impl Sha256State {
    pub fn new() -> Sha256State {
        Sha256State {
            words: IV,
            len: 0,
            tail: Vec::with_capacity(BLOCK),
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            let block = std::mem::take(&mut self.tail);
            self.compress(&block);
            self.tail = block;
            self.tail.clear();
        }
        let whole = data.len() - data.len() % BLOCK;
        self.compress(&data[..whole]);
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything given to `update`.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = std::mem::take(&mut self.tail);
        pad.push(0x80);
        while pad.len() % BLOCK != BLOCK - 8 {
            pad.push(0);
        }
        pad.extend_from_slice(&bits.to_be_bytes());
        self.compress(&pad);
        let mut out = [0u8; 32];
        for (chunk, w) in out.chunks_exact_mut(4).zip(self.words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// `data` is a whole number of blocks.
    fn compress(&mut self, data: &[u8]) {
        for block in data.chunks_exact(BLOCK) {
            sha2::compress256(
                &mut self.words,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
    }

    /// The stored form (at most 105 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.tail.len());
        out.push(VERSION);
        for w in self.words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.len.to_be_bytes());
        out.push(self.tail.len() as u8);
        out.extend_from_slice(&self.tail);
        out
    }

    /// Read back what `to_bytes` wrote; `None` if it is not that.
    pub fn from_bytes(b: &[u8]) -> Option<Sha256State> {
        if b.len() < FIXED || b[0] != VERSION {
            return None;
        }
        let mut words = [0u32; 8];
        for (w, chunk) in words.iter_mut().zip(b[1..33].chunks_exact(4)) {
            *w = u32::from_be_bytes(chunk.try_into().ok()?);
        }
        let len = u64::from_be_bytes(b[33..41].try_into().ok()?);
        let tail_len = usize::from(b[41]);
        let tail = b.get(FIXED..)?;
        let consistent =
            tail.len() == tail_len && tail_len < BLOCK && len % BLOCK as u64 == tail_len as u64;
        consistent.then(|| Sha256State {
            words,
            len,
            tail: tail.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// A deterministic pseudo-random sequence, so failures reproduce.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_sha2_for_any_chunking_and_any_resume_point() {
        for (n, seed) in [
            (0, 1),
            (1, 2),
            (55, 3),
            (56, 4),
            (63, 5),
            (64, 6),
            (65, 7),
            (1000, 8),
            (70_000, 9),
        ] {
            let data = bytes(n, seed);
            let want: [u8; 32] = Sha256::digest(&data).into();
            for step in [1, 3, 63, 64, 65, 4096] {
                let mut h = Sha256State::new();
                for (i, chunk) in data.chunks(step).enumerate() {
                    h.update(chunk);
                    if i % 3 == 1 {
                        // Stored and resumed, as between two PATCHes on two nodes.
                        h = Sha256State::from_bytes(&h.to_bytes()).expect("round trip");
                    }
                }
                assert_eq!(h.len(), n as u64);
                assert_eq!(h.finalize(), want, "n={n} step={step}");
            }
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let mut h = Sha256State::new();
        h.update(b"abc");
        let mut b = h.to_bytes();
        assert!(Sha256State::from_bytes(&b).is_some());
        assert_eq!(Sha256State::from_bytes(&b[..b.len() - 1]), None);
        b[0] = 9;
        assert_eq!(Sha256State::from_bytes(&b), None);
        assert_eq!(Sha256State::from_bytes(&[]), None);
    }
}
