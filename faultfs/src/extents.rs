//! Unsynced data of one file: ordered, non-overlapping, non-adjacent byte extents.

use std::collections::BTreeMap;

/// Dirty extents keyed by start offset. Invariant: extents neither overlap nor touch,
/// and none is empty.
#[derive(Debug, Default)]
pub(crate) struct Extents {
    map: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
}

impl Extents {
    /// Bytes covered by the extents.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether there is no extent.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every extent.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    /// The extents in offset order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.map.iter().map(|(off, data)| (*off, data.as_slice()))
    }

    /// Records `data` at `off`, over whatever was there, merging with overlapping and
    /// adjacent extents. Appending to the end of an extent reuses its buffer.
    pub(crate) fn insert(&mut self, off: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = off + data.len() as u64;
        // The first extent that overlaps or touches [off, end): it starts at or before off
        // and reaches off, or it starts inside (off, end].
        let mut start = off;
        let mut buf: Vec<u8> = Vec::new();
        if let Some((&s, v)) = self.map.range(..=off).next_back() {
            if s + v.len() as u64 >= off {
                start = s;
                buf = self.map.remove(&s).unwrap_or_default();
                self.bytes -= buf.len() as u64;
            }
        }
        // Every later extent starting at or before `end` merges too.
        let later: Vec<u64> = self.map.range(off..=end).map(|(&s, _)| s).collect();
        let mut new_end = end.max(start + buf.len() as u64);
        let mut merged = Vec::new();
        for s in later {
            if let Some(v) = self.map.remove(&s) {
                self.bytes -= v.len() as u64;
                new_end = new_end.max(s + v.len() as u64);
                merged.push((s, v));
            }
        }
        buf.resize((new_end - start) as usize, 0);
        for (s, v) in merged {
            let at = (s - start) as usize;
            buf[at..at + v.len()].copy_from_slice(&v);
        }
        let at = (off - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.bytes += buf.len() as u64;
        self.map.insert(start, buf);
    }

    /// Forgets everything at or beyond `size`.
    pub(crate) fn truncate(&mut self, size: u64) {
        let beyond: Vec<u64> = self.map.range(size..).map(|(&s, _)| s).collect();
        for s in beyond {
            if let Some(v) = self.map.remove(&s) {
                self.bytes -= v.len() as u64;
            }
        }
        if let Some((&s, v)) = self.map.range_mut(..size).next_back() {
            let keep = (size - s) as usize;
            if v.len() > keep {
                self.bytes -= (v.len() - keep) as u64;
                v.truncate(keep);
            }
        }
    }

    /// Copies the extents' bytes that fall in `[off, off + buf.len())` onto `buf`.
    pub(crate) fn overlay(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        let first = self
            .map
            .range(..=off)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(off);
        for (&s, v) in self.map.range(first..end) {
            let e = s + v.len() as u64;
            if e <= off {
                continue;
            }
            let from = s.max(off);
            let to = e.min(end);
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&v[(from - s) as usize..(to - s) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Extents;

    /// Reference model: a plain byte vector with a "written" mask.
    fn check(ops: &[(u64, usize, u8)], trunc: Option<u64>) {
        let mut e = Extents::default();
        let mut model: Vec<Option<u8>> = vec![None; 256];
        for &(off, len, byte) in ops {
            e.insert(off, &vec![byte; len]);
            for m in model.iter_mut().skip(off as usize).take(len) {
                *m = Some(byte);
            }
        }
        if let Some(t) = trunc {
            e.truncate(t);
            for m in model.iter_mut().skip(t as usize) {
                *m = None;
            }
        }
        let mut buf = vec![0u8; 256];
        e.overlay(0, &mut buf);
        for (i, m) in model.iter().enumerate() {
            assert_eq!(buf[i], m.unwrap_or(0), "byte {i} after {ops:?}");
        }
        let covered = model.iter().filter(|m| m.is_some()).count() as u64;
        assert_eq!(e.bytes(), covered);
        // No two extents touch.
        let spans: Vec<(u64, u64)> = e.iter().map(|(s, d)| (s, s + d.len() as u64)).collect();
        for w in spans.windows(2) {
            assert!(w[0].1 < w[1].0, "{spans:?}");
        }
        // A shifted window reads the same bytes.
        let mut part = vec![0u8; 50];
        e.overlay(37, &mut part);
        assert_eq!(&part[..], &buf[37..87]);
    }

    #[test]
    fn merges_like_a_byte_array() {
        check(&[(0, 10, 1), (10, 5, 2)], None);
        check(&[(20, 10, 1), (5, 10, 2), (14, 8, 3)], None);
        check(&[(20, 10, 1), (40, 10, 2), (60, 10, 3), (25, 40, 4)], None);
        check(&[(50, 10, 1), (0, 5, 2), (100, 3, 3), (4, 97, 4)], Some(60));
        check(&[(50, 10, 1), (70, 5, 2)], Some(72));
        check(&[(50, 10, 1), (70, 5, 2)], Some(0));
        let mut seed = 7u64;
        for _ in 0..300 {
            let mut ops = Vec::new();
            for _ in 0..8 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let off = (seed >> 33) % 200;
                let len = ((seed >> 20) % 50) as usize + 1;
                ops.push((off, len.min(256 - off as usize), (seed >> 50) as u8 | 1));
            }
            let t = (seed >> 40) % 300;
            check(&ops, if t < 256 { Some(t) } else { None });
        }
    }
}
