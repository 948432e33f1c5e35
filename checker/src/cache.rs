//! The cache of (linearized set, model state) pairs the search has already explored.
//!
//! Lowe's refinement of Wing & Gong: reaching a pair seen before cannot lead anywhere new, so the
//! search skips it. Keys are the set's Zobrist hash and the state; the compact sets sharing a key
//! are kept in a short list and compared in full.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::bitset::{Bitset, CompactBitset};

/// A fast hasher for keys that already start with a well-mixed 64-bit hash.
#[derive(Default)]
pub struct MixHasher {
    state: u64,
}

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.state = (self.state.rotate_left(5) ^ value).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// The set of explored (linearized set, state) pairs.
#[derive(Debug)]
pub struct SeenCache<S> {
    // One compact set per (hash, state); the rare second set with the same hash and state goes to
    // `collisions`, so the common case costs one allocation (the set's words).
    entries: HashMap<(u64, S), CompactBitset, BuildHasherDefault<MixHasher>>,
    collisions: HashMap<(u64, S), Vec<CompactBitset>, BuildHasherDefault<MixHasher>>,
    len: u64,
    bytes: u64,
}

impl<S: Clone + Eq + Hash> SeenCache<S> {
    /// An empty cache.
    pub fn new() -> Self {
        SeenCache {
            entries: HashMap::default(),
            collisions: HashMap::default(),
            len: 0,
            bytes: 0,
        }
    }

    /// Records the pair; returns false if it was already there.
    pub fn insert(&mut self, linearized: &Bitset, state: &S) -> bool {
        let key = (linearized.hash(), state.clone());
        // Table slot (with the map's spare capacity) plus the words' allocation and its header.
        let entry_bytes = |compact: &CompactBitset| {
            (std::mem::size_of::<((u64, S), CompactBitset)>() * 2 + compact.words_bytes() + 16)
                as u64
        };
        match self.entries.get(&key) {
            None => {
                let compact = linearized.compact();
                self.bytes += entry_bytes(&compact);
                self.entries.insert(key, compact);
            }
            Some(first) if linearized.matches(first) => return false,
            Some(_) => {
                let list = self.collisions.entry(key).or_default();
                if list.iter().any(|c| linearized.matches(c)) {
                    return false;
                }
                let compact = linearized.compact();
                self.bytes += entry_bytes(&compact) + 24;
                list.push(compact);
            }
        }
        self.len += 1;
        true
    }

    /// How many pairs are stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate memory taken, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl<S: Clone + Eq + Hash> Default for SeenCache<S> {
    fn default() -> Self {
        Self::new()
    }
}
