//! The set of linearized operations, with an incremental hash and a compact copy for the cache.
//!
//! Pure data structure; no I/O.

/// A fixed-size set of operation indices with an order-independent (Zobrist) hash kept up to date.
#[derive(Debug, Clone)]
pub struct Bitset {
    words: Vec<u64>,
    // Invariant: hash == xor of zobrist(i) over every member i.
    hash: u64,
    // Invariant: words[..low] are all ones and words[low] (if any) is not.
    low: usize,
    // Invariant: words[high..] are all zeros and words[high - 1] (if high > 0) is not.
    high: usize,
}

/// A random-looking 64-bit value per index (splitmix64), so the xor of members hashes the set.
fn zobrist(index: usize) -> u64 {
    let mut z = (index as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Bitset {
    /// An empty set able to hold indices `0..len`.
    pub fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            hash: 0,
            low: 0,
            high: 0,
        }
    }

    /// Adds `index`.
    pub fn insert(&mut self, index: usize) {
        debug_assert!(!self.contains(index));
        let w = index / 64;
        self.words[w] |= 1 << (index % 64);
        self.hash ^= zobrist(index);
        self.high = self.high.max(w + 1);
        while self.low < self.words.len() && self.words[self.low] == u64::MAX {
            self.low += 1;
        }
    }

    /// Removes `index`.
    pub fn remove(&mut self, index: usize) {
        debug_assert!(self.contains(index));
        let w = index / 64;
        self.words[w] &= !(1 << (index % 64));
        self.hash ^= zobrist(index);
        self.low = self.low.min(w);
        while self.high > 0 && self.words[self.high - 1] == 0 {
            self.high -= 1;
        }
    }

    /// True if `index` is a member.
    pub fn contains(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    /// The set's hash (equal sets have equal hashes).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The span of words worth storing: from the first word that is not all ones to the last word
    /// that is not zero. Everything before is all ones, everything after all zeros.
    fn span(&self) -> (usize, usize) {
        let low = self
            .words
            .iter()
            .position(|&w| w != u64::MAX)
            .unwrap_or(self.words.len());
        let high = self
            .words
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1);
        (low, high.max(low))
    }

    /// A compact copy: linearized sets are mostly a full prefix plus a few stragglers.
    pub fn compact(&self) -> CompactBitset {
        let (low, high) = self.span();
        CompactBitset {
            low: low as u32,
            words: self.words[low..high].into(),
        }
    }

    /// True if `compact` is a copy of this set.
    pub fn matches(&self, compact: &CompactBitset) -> bool {
        let (low, high) = self.span();
        low == compact.low as usize && self.words[low..high] == *compact.words
    }
}

/// A [`Bitset`] stored as (number of leading all-ones words, the words after them up to the last
/// non-zero one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactBitset {
    low: u32,
    words: Box<[u64]>,
}

impl CompactBitset {
    /// Bytes of the heap allocation holding the words.
    pub fn words_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_copies_match_only_their_set_and_hash_is_order_independent() {
        let mut a = Bitset::new(200);
        for i in 0..130 {
            a.insert(i);
        }
        a.insert(150);
        let compact = a.compact();
        assert!(a.matches(&compact));
        let mut b = Bitset::new(200);
        b.insert(150);
        for i in (0..130).rev() {
            b.insert(i);
        }
        assert_eq!(a.hash(), b.hash());
        assert!(b.matches(&compact));
        b.remove(3);
        assert!(!b.matches(&compact));
        b.insert(3);
        b.insert(199);
        assert!(!b.matches(&compact));
        assert!(Bitset::new(0).matches(&Bitset::new(0).compact()));
    }
}
