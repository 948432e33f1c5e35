//! Sharding: which slot a key hashes to (exactly as Redis Cluster computes it), which shard owns
//! a slot, and which nodes replicate each shard.
//!
//! The key space is [`SLOT_COUNT`] slots; `slot = CRC16(key) mod 16384`, where only the part
//! inside the first non-empty `{...}` hash tag is hashed if there is one. The cluster has S
//! shards owning contiguous, near-equal slot ranges; each shard is one Raft group of R replicas
//! on R distinct nodes. Placement is a pure function of (S, R, the node ids), so every node
//! computes the same map. Pure: no I/O.

use crate::raft::types::NodeId;
use std::fmt;

/// The number of hash slots (Redis Cluster's).
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot, `0..SLOT_COUNT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u16);

/// A shard (one Raft group), `0..shard_count`. Also the Raft group id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection, no final XOR — the
/// checksum Redis Cluster hashes keys with (`crc16.c` in Redis).
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key, honouring hash tags as Redis does (`keyHashSlot`): if the key has a `{`
/// followed later by a `}` with at least one byte between them, only the bytes between the first
/// `{` and the first `}` after it are hashed; otherwise the whole key is.
#[must_use]
pub fn key_slot(key: &[u8]) -> Slot {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    Slot(crc16(hashed) % SLOT_COUNT)
}

/// An inclusive range of slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    /// The first slot.
    pub start: Slot,
    /// The last slot (inclusive).
    pub end: Slot,
}

impl SlotRange {
    /// Whether the range holds `slot`.
    #[must_use]
    pub fn contains(&self, slot: Slot) -> bool {
        self.start <= slot && slot <= self.end
    }

    /// The number of slots in the range.
    #[must_use]
    pub fn len(&self) -> u32 {
        u32::from(self.end.0) - u32::from(self.start.0) + 1
    }

    /// Never true: a range holds at least one slot. (For clippy's `len_without_is_empty`.)
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One shard: its slots and the nodes that replicate it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard (and Raft group) id.
    pub id: ShardId,
    /// The slots it owns.
    pub slots: SlotRange,
    /// The nodes holding a replica, distinct; `replicas[0]` is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// The node that should lead the group at start (it campaigns first); equals `replicas[0]`.
    pub preferred_leader: NodeId,
}

/// Why a shard map cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    /// The shard count is 0 or more than [`SLOT_COUNT`].
    #[error("shard_count: {0} is not in 1..=16384")]
    ShardCount(u32),
    /// The replica count is 0 or more than the number of nodes.
    #[error("replica_count: {replica_count} is not in 1..={node_count} (the number of nodes)")]
    ReplicaCount {
        /// Replicas asked for.
        replica_count: usize,
        /// Nodes available.
        node_count: usize,
    },
    /// A node id appears twice, or is 0.
    #[error("nodes: node id {0} is duplicated or zero")]
    NodeId(u64),
}

/// The cluster's shards: slot ownership and replica placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    // Invariant: shards[i].id == ShardId(i); slot ranges are contiguous, ascending and cover
    // 0..SLOT_COUNT exactly.
    shards: Vec<ShardInfo>,
    // Sorted, distinct, non-zero.
    nodes: Vec<NodeId>,
}

impl ShardMap {
    /// Builds the map for `shard_count` shards of `replica_count` replicas over `nodes` (in any
    /// order; placement depends only on the set of ids).
    ///
    /// Slots: shard s owns `s * 16384 / S ..= (s + 1) * 16384 / S - 1`, so range sizes differ by
    /// at most one. Replicas: nodes sorted by id; the shards' replica slots are dealt round-robin,
    /// shard s taking nodes `(s * R + k) mod N` for k in 0..R (distinct since R <= N), which gives
    /// every node `floor` or `ceil` of `S * R / N` replicas. Preferred leader: among a shard's
    /// replicas, the one leading the fewest shards so far (ties to the earlier of the R), moved to
    /// the front of `replicas`; this spreads leaders within one of the mean too.
    ///
    /// # Errors
    ///
    /// [`ShardMapError`] for a shard count outside 1..=16384, a replica count outside 1..=N, or a
    /// zero or duplicated node id.
    pub fn new(
        shard_count: u32,
        replica_count: usize,
        nodes: &[NodeId],
    ) -> Result<ShardMap, ShardMapError> {
        if shard_count == 0 || shard_count > u32::from(SLOT_COUNT) {
            return Err(ShardMapError::ShardCount(shard_count));
        }
        let mut sorted = nodes.to_vec();
        sorted.sort();
        for (i, node) in sorted.iter().enumerate() {
            if node.0 == 0 || (i > 0 && sorted[i - 1] == *node) {
                return Err(ShardMapError::NodeId(node.0));
            }
        }
        let n = sorted.len();
        if replica_count == 0 || replica_count > n {
            return Err(ShardMapError::ReplicaCount {
                replica_count,
                node_count: n,
            });
        }
        let s_total = u64::from(shard_count);
        let slots_total = u64::from(SLOT_COUNT);
        let mut leader_counts = vec![0usize; n];
        let mut shards = Vec::with_capacity(shard_count as usize);
        for s in 0..shard_count {
            let start = u64::from(s) * slots_total / s_total;
            let end = (u64::from(s) + 1) * slots_total / s_total - 1;
            let mut picks: Vec<usize> = (0..replica_count)
                .map(|k| (s as usize * replica_count + k) % n)
                .collect();
            let leader_at = (0..replica_count)
                .min_by_key(|&k| (leader_counts[picks[k]], k))
                .expect("replica_count >= 1");
            let leader = picks.remove(leader_at);
            picks.insert(0, leader);
            leader_counts[leader] += 1;
            let replicas: Vec<NodeId> = picks.iter().map(|&i| sorted[i]).collect();
            shards.push(ShardInfo {
                id: ShardId(s),
                slots: SlotRange {
                    start: Slot(start as u16),
                    end: Slot(end as u16),
                },
                preferred_leader: replicas[0],
                replicas,
            });
        }
        Ok(ShardMap {
            shards,
            nodes: sorted,
        })
    }

    /// The number of shards.
    #[must_use]
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// All shards, by id.
    #[must_use]
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// The cluster's nodes, sorted by id.
    #[must_use]
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The shard owning `slot`.
    ///
    /// # Panics
    ///
    /// If `slot` is not below [`SLOT_COUNT`].
    #[must_use]
    pub fn shard_of_slot(&self, slot: Slot) -> ShardId {
        assert!(slot.0 < SLOT_COUNT, "slot {slot} out of range");
        let i = self.shards.partition_point(|s| s.slots.end < slot);
        debug_assert!(self.shards[i].slots.contains(slot));
        self.shards[i].id
    }

    /// The shard owning `key`.
    #[must_use]
    pub fn shard_of_key(&self, key: &[u8]) -> ShardId {
        self.shard_of_slot(key_slot(key))
    }

    /// The shard with this id, or `None` if there is no such shard.
    #[must_use]
    pub fn get(&self, id: ShardId) -> Option<&ShardInfo> {
        self.shards.get(id.0 as usize)
    }

    /// The shard with this id.
    ///
    /// # Panics
    ///
    /// If `id` is not below [`ShardMap::shard_count`].
    #[must_use]
    pub fn shard(&self, id: ShardId) -> &ShardInfo {
        &self.shards[id.0 as usize]
    }

    /// The shards `node` holds a replica of, ascending.
    #[must_use]
    pub fn shards_of_node(&self, node: NodeId) -> Vec<ShardId> {
        self.shards
            .iter()
            .filter(|s| s.replicas.contains(&node))
            .map(|s| s.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn crc16_matches_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn key_slots_match_redis() {
        assert_eq!(key_slot(b"foo"), Slot(12182));
        assert_eq!(key_slot(b"bar"), Slot(5061));
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty first tag: the whole key is hashed.
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            Slot(crc16(b"foo{}{bar}") % SLOT_COUNT)
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        // The tag runs from the first '{' to the first '}' after it.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // No closing brace: the whole key.
        assert_eq!(key_slot(b"foo{bar"), Slot(crc16(b"foo{bar") % SLOT_COUNT));
    }

    #[test]
    fn slot_ranges_are_contiguous_and_cover_everything() {
        for shard_count in [1u32, 2, 3, 7, 8, 100, 16383, 16384] {
            let map = ShardMap::new(shard_count, 1, &ids(&[1])).unwrap();
            let mut next = 0u32;
            let (mut min, mut max) = (u32::MAX, 0);
            for (i, shard) in map.shards().iter().enumerate() {
                assert_eq!(shard.id, ShardId(i as u32));
                assert_eq!(u32::from(shard.slots.start.0), next);
                next = u32::from(shard.slots.end.0) + 1;
                min = min.min(shard.slots.len());
                max = max.max(shard.slots.len());
            }
            assert_eq!(next, 16384);
            assert!(max - min <= 1, "{shard_count}: {min}..{max}");
        }
        let map = ShardMap::new(3, 1, &ids(&[1])).unwrap();
        let ranges: Vec<(u16, u16)> = map
            .shards()
            .iter()
            .map(|s| (s.slots.start.0, s.slots.end.0))
            .collect();
        assert_eq!(ranges, vec![(0, 5460), (5461, 10921), (10922, 16383)]);
        assert_eq!(map.shard_of_slot(Slot(0)), ShardId(0));
        assert_eq!(map.shard_of_slot(Slot(5460)), ShardId(0));
        assert_eq!(map.shard_of_slot(Slot(5461)), ShardId(1));
        assert_eq!(map.shard_of_slot(Slot(16383)), ShardId(2));
        assert_eq!(map.shard_of_key(b"foo"), ShardId(2));
    }

    #[test]
    fn placement_is_exact_for_a_small_cluster() {
        let map = ShardMap::new(4, 3, &ids(&[3, 1, 2])).unwrap();
        let placed: Vec<(Vec<u64>, u64)> = map
            .shards()
            .iter()
            .map(|s| {
                (
                    s.replicas.iter().map(|n| n.0).collect(),
                    s.preferred_leader.0,
                )
            })
            .collect();
        assert_eq!(
            placed,
            vec![
                (vec![1, 2, 3], 1),
                (vec![2, 1, 3], 2),
                (vec![3, 1, 2], 3),
                (vec![1, 2, 3], 1),
            ]
        );
        assert_eq!(
            map.shards_of_node(NodeId(2)),
            vec![ShardId(0), ShardId(1), ShardId(2), ShardId(3)]
        );
        let map = ShardMap::new(5, 2, &ids(&[1, 2, 3])).unwrap();
        assert_eq!(
            map.shards_of_node(NodeId(1)),
            vec![ShardId(0), ShardId(1), ShardId(3), ShardId(4)]
        );
    }

    #[test]
    fn replicas_and_leaders_spread_within_one_of_the_mean() {
        for n in 1..=9usize {
            let nodes: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
            for r in 1..=n {
                for s in 1..=40u32 {
                    let map = ShardMap::new(s, r, &nodes).unwrap();
                    let mut replicas = vec![0usize; n];
                    let mut leaders = vec![0usize; n];
                    for shard in map.shards() {
                        let mut distinct = shard.replicas.clone();
                        distinct.sort();
                        distinct.dedup();
                        assert_eq!(distinct.len(), r);
                        assert_eq!(shard.preferred_leader, shard.replicas[0]);
                        for node in &shard.replicas {
                            replicas[node.0 as usize - 1] += 1;
                        }
                        leaders[shard.preferred_leader.0 as usize - 1] += 1;
                    }
                    let within = |counts: &[usize], total: usize| {
                        counts.iter().all(|&c| {
                            let (c, total, n) = (c as f64, total as f64, n as f64);
                            (c - total / n).abs() <= 1.0
                        })
                    };
                    assert!(
                        within(&replicas, s as usize * r),
                        "n={n} r={r} s={s} replicas {replicas:?}"
                    );
                    assert!(
                        within(&leaders, s as usize),
                        "n={n} r={r} s={s} leaders {leaders:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let nodes = ids(&[1, 2, 3]);
        assert_eq!(
            ShardMap::new(0, 1, &nodes),
            Err(ShardMapError::ShardCount(0))
        );
        assert_eq!(
            ShardMap::new(16385, 1, &nodes),
            Err(ShardMapError::ShardCount(16385))
        );
        assert_eq!(
            ShardMap::new(1, 4, &nodes),
            Err(ShardMapError::ReplicaCount {
                replica_count: 4,
                node_count: 3
            })
        );
        assert_eq!(
            ShardMap::new(1, 0, &nodes).unwrap_err().to_string(),
            "replica_count: 0 is not in 1..=3 (the number of nodes)"
        );
        assert_eq!(
            ShardMap::new(1, 1, &ids(&[1, 2, 1])),
            Err(ShardMapError::NodeId(1))
        );
        assert_eq!(
            ShardMap::new(1, 1, &ids(&[0, 2])),
            Err(ShardMapError::NodeId(0))
        );
    }
}
