//! Partitions as data: each shape is a pure function from the nodes (and a seeded generator, and
//! for `leaders` the nodes that lead now) to a set of cut directed links. A cut link `(a, b)`
//! loses everything `a` sends to `b`; the interpreter turns it into a blackholed proxy.
//!
//! The shapes, after Jepsen's nemesis grudges:
//! - **one**: one node cut off from every other, both ways;
//! - **halves**: a majority and a minority, cut from each other both ways;
//! - **leaders**: up to a minority of the nodes that lead a shard now, each cut off alone;
//! - **bridge**: two halves cut from each other, joined by one node that sees both;
//! - **majorities ring**: every node hears a majority (itself included), and no two nodes hear
//!   the same one: nodes on a shuffled ring each hear the window of a majority around them;
//! - **one way**: one node's links cut in one direction only: it can no longer send (it still
//!   hears everyone) or no longer hear (it can still send).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use workloads::Rng;

/// A node's id (as in the cluster configuration).
pub type NodeId = u64;

/// A directed link: what `.0` sends to `.1`.
pub type Link = (NodeId, NodeId);

/// The partition shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One node isolated.
    One,
    /// Majority and minority.
    Halves,
    /// Current leaders isolated (each alone), at most a minority of the nodes.
    Leaders,
    /// Two halves and a bridge node.
    Bridge,
    /// Every node hears its own majority.
    MajoritiesRing,
    /// One node cut in one direction.
    OneWay,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 6] = [
        Shape::One,
        Shape::Halves,
        Shape::Leaders,
        Shape::Bridge,
        Shape::MajoritiesRing,
        Shape::OneWay,
    ];

    /// The shape's name in results (`one`, `halves`, `leaders`, `bridge`, `majorities-ring`,
    /// `one-way`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Halves => "halves",
            Shape::Leaders => "leaders",
            Shape::Bridge => "bridge",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::OneWay => "one-way",
        }
    }
}

/// A partition: the links it cuts and a sentence saying what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// The shape it was made by.
    pub shape: Shape,
    /// The cut directed links. Invariant: no link from a node to itself.
    pub cuts: BTreeSet<Link>,
    /// For people: e.g. `[1, 4, 5] | [2, 3]`.
    pub description: String,
}

/// The smallest majority of `n` nodes.
#[must_use]
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The nodes each node still hears from under `cuts` (itself included).
#[must_use]
pub fn hears(nodes: &[NodeId], cuts: &BTreeSet<Link>) -> BTreeMap<NodeId, BTreeSet<NodeId>> {
    nodes
        .iter()
        .map(|&to| {
            let heard = nodes
                .iter()
                .copied()
                .filter(|&from| from == to || !cuts.contains(&(from, to)))
                .collect();
            (to, heard)
        })
        .collect()
}

/// Cuts every link between a node of `a` and a node of `b`, both ways.
fn cut_between(a: &[NodeId], b: &[NodeId], cuts: &mut BTreeSet<Link>) {
    for &x in a {
        for &y in b {
            if x != y {
                cuts.insert((x, y));
                cuts.insert((y, x));
            }
        }
    }
}

fn shuffled(nodes: &[NodeId], rng: &mut Rng) -> Vec<NodeId> {
    let mut v = nodes.to_vec();
    rng.shuffle(&mut v);
    v
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort_unstable();
    v
}

/// Cuts each of `isolated` off from every other node of `nodes` (both directions).
#[must_use]
pub fn isolate(isolated: &[NodeId], nodes: &[NodeId]) -> BTreeSet<Link> {
    let mut cuts = BTreeSet::new();
    for &x in isolated {
        let others: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != x).collect();
        cut_between(&[x], &others, &mut cuts);
    }
    cuts
}

/// Builds the partition of `shape` over `nodes`. `leaders` (the nodes that lead a shard now)
/// is only read by [`Shape::Leaders`]; when none is known, it isolates one random node.
///
/// # Panics
/// If `nodes` has fewer than two nodes.
#[must_use]
pub fn partition(shape: Shape, nodes: &[NodeId], leaders: &[NodeId], rng: &mut Rng) -> Partition {
    assert!(nodes.len() >= 2, "a partition needs at least two nodes");
    let mut cuts = BTreeSet::new();
    let description = match shape {
        Shape::One => {
            let order = shuffled(nodes, rng);
            cut_between(&order[..1], &order[1..], &mut cuts);
            format!("{} isolated", order[0])
        }
        Shape::Halves => {
            let order = shuffled(nodes, rng);
            let (big, small) = order.split_at(majority(nodes.len()));
            cut_between(big, small, &mut cuts);
            format!("{:?} | {:?}", sorted(big.to_vec()), sorted(small.to_vec()))
        }
        Shape::Leaders => {
            let mut candidates: Vec<NodeId> = shuffled(nodes, rng)
                .into_iter()
                .filter(|n| leaders.contains(n))
                .collect();
            if candidates.is_empty() {
                candidates = shuffled(nodes, rng);
            }
            let count = (nodes.len() - majority(nodes.len())).max(1);
            let isolated = sorted(candidates.into_iter().take(count).collect());
            cuts = isolate(&isolated, nodes);
            format!("leaders {isolated:?} isolated, each alone")
        }
        Shape::Bridge => {
            let order = shuffled(nodes, rng);
            let bridge = order[0];
            let rest = &order[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            cut_between(a, b, &mut cuts);
            format!(
                "{:?} | {:?}, bridged by {bridge}",
                sorted(a.to_vec()),
                sorted(b.to_vec())
            )
        }
        Shape::MajoritiesRing => {
            let ring = shuffled(nodes, rng);
            let n = ring.len();
            let m = majority(n);
            let mut views = Vec::new();
            for (p, &node) in ring.iter().enumerate() {
                // The window of m ring positions with `node` in its middle.
                let window: BTreeSet<NodeId> =
                    (0..m).map(|k| ring[(p + n + k - m / 2) % n]).collect();
                for &from in &ring {
                    if !window.contains(&from) {
                        cuts.insert((from, node));
                    }
                }
                views.push(format!(
                    "{node} hears {:?}",
                    window.iter().copied().collect::<Vec<_>>()
                ));
            }
            views.sort();
            format!("ring: {}", views.join("; "))
        }
        Shape::OneWay => {
            let order = shuffled(nodes, rng);
            let node = order[0];
            let mute = rng.chance(0.5);
            for &other in &order[1..] {
                cuts.insert(if mute { (node, other) } else { (other, node) });
            }
            if mute {
                format!("{node} cannot send (it still hears everyone)")
            } else {
                format!("{node} cannot hear (it can still send)")
            }
        }
    };
    Partition {
        shape,
        cuts,
        description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u64) -> Vec<NodeId> {
        (1..=n).collect()
    }

    /// Components of the undirected "both ways connected" graph.
    fn sides(nodes: &[NodeId], cuts: &BTreeSet<Link>) -> Vec<BTreeSet<NodeId>> {
        let h = hears(nodes, cuts);
        let mut out: Vec<BTreeSet<NodeId>> = Vec::new();
        for &n in nodes {
            let side: BTreeSet<NodeId> = h[&n]
                .iter()
                .copied()
                .filter(|m| h[m].contains(&n))
                .collect();
            if !out.contains(&side) {
                out.push(side);
            }
        }
        out
    }

    #[test]
    fn halves_split_into_a_majority_and_a_minority_cut_both_ways() {
        for n in [3, 5, 7] {
            for seed in 0..20 {
                let p = partition(Shape::Halves, &nodes(n), &[], &mut Rng::new(seed));
                let mut sizes: Vec<usize> = sides(&nodes(n), &p.cuts)
                    .iter()
                    .map(BTreeSet::len)
                    .collect();
                sizes.sort_unstable();
                let m = majority(n as usize);
                assert_eq!(
                    sizes,
                    vec![n as usize - m, m],
                    "n={n} seed={seed}: {}",
                    p.description
                );
                for &(a, b) in &p.cuts {
                    assert!(p.cuts.contains(&(b, a)), "symmetric");
                }
            }
        }
    }

    #[test]
    fn one_isolates_exactly_one_node() {
        for n in [3, 5, 7] {
            let p = partition(Shape::One, &nodes(n), &[], &mut Rng::new(n));
            assert_eq!(p.cuts.len(), 2 * (n as usize - 1));
            let h = hears(&nodes(n), &p.cuts);
            assert_eq!(h.values().filter(|s| s.len() == 1).count(), 1);
        }
    }

    #[test]
    fn bridge_joins_two_halves_through_one_node() {
        for n in [3, 5, 7] {
            for seed in 0..20 {
                let all = nodes(n);
                let p = partition(Shape::Bridge, &all, &[], &mut Rng::new(seed));
                let h = hears(&all, &p.cuts);
                // Exactly one node hears everyone; every other node hears only its half and it.
                let bridges: Vec<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|x| h[x].len() == n as usize)
                    .collect();
                assert_eq!(bridges.len(), 1, "n={n} seed={seed}: {}", p.description);
                let b = bridges[0];
                let others: Vec<NodeId> = all.iter().copied().filter(|x| *x != b).collect();
                let halves = sides(&others, &p.cuts);
                assert_eq!(halves.len(), 2, "{}", p.description);
                for side in &halves {
                    // With the bridge, each half is at most a majority: neither side alone wins.
                    assert!(side.len() < majority(n as usize));
                    for x in side {
                        assert!(h[x].contains(&b) && h[&b].contains(x));
                    }
                }
            }
        }
    }

    #[test]
    fn majorities_ring_every_node_hears_a_majority_and_no_two_the_same() {
        for n in [3, 5, 7] {
            for seed in 0..20 {
                let all = nodes(n);
                let p = partition(Shape::MajoritiesRing, &all, &[], &mut Rng::new(seed));
                let h = hears(&all, &p.cuts);
                let views: BTreeSet<&BTreeSet<NodeId>> = h.values().collect();
                assert_eq!(views.len(), n as usize, "distinct views: {}", p.description);
                assert!(h.values().all(|v| v.len() == majority(n as usize)));
            }
        }
    }

    #[test]
    fn one_way_cuts_one_direction_only() {
        let mut mutes = 0;
        for seed in 0..40 {
            let all = nodes(5);
            let p = partition(Shape::OneWay, &all, &[], &mut Rng::new(seed));
            assert_eq!(p.cuts.len(), 4);
            for &(a, b) in &p.cuts {
                assert!(!p.cuts.contains(&(b, a)), "{}", p.description);
            }
            let senders: BTreeSet<NodeId> = p.cuts.iter().map(|l| l.0).collect();
            mutes += usize::from(senders.len() == 1);
        }
        assert!(
            (5..35).contains(&mutes),
            "both directions are drawn: {mutes}"
        );
    }

    #[test]
    fn leaders_isolates_at_most_a_minority_of_leaders() {
        let all = nodes(5);
        for seed in 0..20 {
            let p = partition(Shape::Leaders, &all, &[2, 4, 5], &mut Rng::new(seed));
            let h = hears(&all, &p.cuts);
            let alone: Vec<NodeId> = all.iter().copied().filter(|x| h[x].len() == 1).collect();
            assert_eq!(alone.len(), 2);
            assert!(alone.iter().all(|x| [2, 4, 5].contains(x)));
        }
        let p = partition(Shape::Leaders, &all, &[3], &mut Rng::new(1));
        assert_eq!(p.description, "leaders [3] isolated, each alone");
        // No leader known: still a partition (one random node).
        let p = partition(Shape::Leaders, &all, &[], &mut Rng::new(1));
        assert!(!p.cuts.is_empty());
    }

    #[test]
    fn same_seed_same_partition() {
        for shape in Shape::ALL {
            let a = partition(shape, &nodes(5), &[1, 2], &mut Rng::new(4));
            let b = partition(shape, &nodes(5), &[1, 2], &mut Rng::new(4));
            assert_eq!(a, b);
        }
    }
}
