//! The faults. Each is a package (Jepsen's `nemesis/combined` idea): what it breaks, how it is
//! healed, what the final phase must undo, and the colour it gets in plots, kept together.
//!
//! | kind | variants | start | heal (and final phase) |
//! |---|---|---|---|
//! | `partition` | the [`Shape`]s | blackhole the cut links' proxies | links pass again |
//! | `kill` | [`Targets`] | SIGKILL the targets | restart them on their data |
//! | `pause` | [`Targets`] | SIGSTOP the targets | SIGCONT |
//! | `slow` | delays | delay with jitter on every node-to-node link | links pass again |
//! | `flaky` | rates | lose, duplicate and reorder peer frames on every node-to-node link | links pass again |
//! | `disk` | one, minority, all; torn or not | SIGKILL the targets and drop every write they had not synced (a power cut; torn: keep a prefix of the last one) | restart them on what a disk would have kept |
//! | `depose` | a leader | cut a leader off from its peers and pause it; resume it, still cut off, once the others have taken over | links pass again (and resume) |

use super::partition::{majority, NodeId, Shape};
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use workloads::Rng;

/// The kinds of fault `--faults` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Network partitions.
    Partition,
    /// SIGKILL, then restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Delay with jitter on node-to-node links.
    Slow,
    /// Frame loss, duplication and reordering on node-to-node links.
    Flaky,
    /// SIGKILL and the loss of every write not synced (nodes' data on the harness's FUSE
    /// filesystem).
    Disk,
    /// A deposed leader that still believes it leads: leaders cut off and paused until the
    /// others have elected leaders and served writes, then resumed while still cut off.
    Depose,
}

impl FaultKind {
    /// Every kind, in `--help` order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Slow,
        FaultKind::Flaky,
        FaultKind::Disk,
        FaultKind::Depose,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Slow => "slow",
            FaultKind::Flaky => "flaky",
            FaultKind::Disk => "disk",
            FaultKind::Depose => "depose",
        }
    }

    /// The colour of this kind's fault windows in plots (Jepsen's).
    #[must_use]
    pub fn color(self) -> &'static str {
        match self {
            FaultKind::Kill => "#E9A4A0",
            FaultKind::Disk => "#E9C3A0",
            FaultKind::Pause => "#A0B1E9",
            FaultKind::Partition => "#E9DCA0",
            FaultKind::Slow | FaultKind::Flaky => "#D1E8A0",
            FaultKind::Depose => "#C9A0E9",
        }
    }

    /// Every variant of this kind, for the schedule to cycle through.
    #[must_use]
    pub fn variants(self) -> Vec<Fault> {
        match self {
            FaultKind::Partition => Shape::ALL.into_iter().map(Fault::Partition).collect(),
            FaultKind::Kill => Targets::ALL.into_iter().map(Fault::Kill).collect(),
            FaultKind::Pause => Targets::ALL.into_iter().map(Fault::Pause).collect(),
            FaultKind::Slow => vec![
                Fault::Slow {
                    delay_ms: 20,
                    jitter_ms: 20,
                },
                Fault::Slow {
                    delay_ms: 100,
                    jitter_ms: 100,
                },
            ],
            FaultKind::Flaky => vec![Fault::Flaky {
                loss: 0.1,
                duplicate: 0.05,
                reorder: 0.1,
            }],
            FaultKind::Disk => [Targets::One, Targets::Minority, Targets::All]
                .into_iter()
                .flat_map(|targets| [false, true].map(|torn| Fault::Disk { targets, torn }))
                .collect(),
            FaultKind::Depose => vec![Fault::Depose],
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `--faults`: a comma list of kinds, or `none`. Repeats are ignored; the result is in
/// a fixed order, so `kill,partition` and `partition,kill` plan the same run.
///
/// # Errors
/// An unknown name, an empty list, or `none` with other faults; the message lists the names.
pub fn parse_faults(text: &str) -> Result<Vec<FaultKind>, String> {
    let names: Vec<&str> = text.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(format!(
            "{text:?} has an empty name; expected a comma list of {} or none",
            kinds_list()
        ));
    }
    if names.contains(&"none") {
        if names.iter().all(|n| *n == "none") {
            return Ok(Vec::new());
        }
        return Err("'none' cannot be combined with other faults".into());
    }
    let mut kinds = Vec::new();
    for name in names {
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown fault {name:?}; expected a comma list of {} or none",
                    kinds_list()
                )
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.sort();
    Ok(kinds)
}

fn kinds_list() -> String {
    FaultKind::ALL.map(FaultKind::name).join(", ")
}

/// Which nodes a process fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    /// One random node.
    One,
    /// A random minority.
    Minority,
    /// A random majority.
    Majority,
    /// Nodes that lead a shard now, at most a minority of the nodes.
    Leaders,
    /// Every node at once (a power cut of the whole cluster, when killing).
    All,
}

impl Targets {
    /// Every target choice.
    pub const ALL: [Targets; 5] = [
        Targets::One,
        Targets::Minority,
        Targets::Majority,
        Targets::Leaders,
        Targets::All,
    ];

    /// The name in results.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Targets::One => "one",
            Targets::Minority => "minority",
            Targets::Majority => "majority",
            Targets::Leaders => "leaders",
            Targets::All => "all",
        }
    }

    /// Picks the nodes: pure, given the nodes, the nodes leading a shard now and a seeded
    /// generator. The result is sorted and never empty.
    ///
    /// # Panics
    /// If `nodes` is empty.
    #[must_use]
    pub fn pick(self, nodes: &[NodeId], leaders: &[NodeId], rng: &mut Rng) -> Vec<NodeId> {
        assert!(!nodes.is_empty(), "no nodes to pick from");
        let n = nodes.len();
        let mut order = nodes.to_vec();
        rng.shuffle(&mut order);
        let minority = (n - majority(n)).max(1);
        let mut picked: Vec<NodeId> = match self {
            Targets::One => order[..1].to_vec(),
            Targets::Minority => order[..minority].to_vec(),
            Targets::Majority => order[..majority(n)].to_vec(),
            Targets::All => order,
            Targets::Leaders => {
                let led: Vec<NodeId> = order
                    .iter()
                    .copied()
                    .filter(|x| leaders.contains(x))
                    .collect();
                if led.is_empty() {
                    order[..1].to_vec()
                } else {
                    led.into_iter().take(minority).collect()
                }
            }
        };
        picked.sort_unstable();
        picked
    }
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// Cut links in a shape.
    Partition(Shape),
    /// SIGKILL the targets; restart them at the heal.
    Kill(Targets),
    /// SIGSTOP the targets; SIGCONT at the heal.
    Pause(Targets),
    /// Delay every node-to-node link by `delay_ms` plus up to `jitter_ms`.
    Slow {
        /// The fixed part of the delay.
        delay_ms: u64,
        /// The most added at random.
        jitter_ms: u64,
    },
    /// Lose, duplicate and reorder peer frames on every node-to-node link at these rates.
    Flaky {
        /// Share of frames lost.
        loss: f64,
        /// Share of frames sent twice.
        duplicate: f64,
        /// Share of frames held back behind the next one.
        reorder: f64,
    },
    /// SIGKILL the targets and drop every write they had not synced (with `torn`, keep a
    /// random prefix of the last one, as a disk may); restart them at the heal on what a disk
    /// would have kept. `All` is a power cut of the whole cluster.
    Disk {
        /// Which nodes lose power.
        targets: Targets,
        /// Whether the last unsynced write is kept torn.
        torn: bool,
    },
    /// Cut one node leading shards off from every other node and pause it; once the others have had time to elect leaders and serve (the op timeout and a
    /// little more, see [`Fault::resume_after`]), resume it still cut off: until it notices
    /// (up to an election timeout) it believes it leads. Healed by letting the links pass.
    Depose,
}

impl Fault {
    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition(_) => FaultKind::Partition,
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Slow { .. } => FaultKind::Slow,
            Fault::Flaky { .. } => FaultKind::Flaky,
            Fault::Disk { .. } => FaultKind::Disk,
            Fault::Depose => FaultKind::Depose,
        }
    }

    /// A short name: `partition-bridge`, `kill-minority`, `slow-100ms`, `flaky`.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Fault::Partition(s) => format!("partition-{}", s.name()),
            Fault::Kill(t) => format!("kill-{}", t.name()),
            Fault::Pause(t) => format!("pause-{}", t.name()),
            Fault::Slow { delay_ms, .. } => format!("slow-{delay_ms}ms"),
            Fault::Flaky { .. } => "flaky".to_string(),
            Fault::Disk { targets, torn } => {
                format!(
                    "disk-{}{}",
                    targets.name(),
                    if *torn { "-torn" } else { "" }
                )
            }
            Fault::Depose => "depose-leaders".to_string(),
        }
    }

    /// For a fault with a middle step (only [`Fault::Depose`]: the resume), when it comes after
    /// the start: long enough for a client's operation on a paused node to time out and for
    /// the others to elect a leader (`op_timeout` plus 1.5 s), but at most 70% of the fault's
    /// length, so that the resumed nodes stay cut off for a while.
    #[must_use]
    pub fn resume_after(&self, op_timeout: Duration, length: Duration) -> Option<Duration> {
        match self {
            Fault::Depose => {
                Some((op_timeout + Duration::from_millis(1500)).min(length.mul_f64(0.7)))
            }
            _ => None,
        }
    }

    /// The colour of its window in plots.
    #[must_use]
    pub fn color(&self) -> &'static str {
        self.kind().color()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_clear_errors() {
        assert_eq!(
            parse_faults("pause,partition,kill,pause").unwrap(),
            vec![FaultKind::Partition, FaultKind::Kill, FaultKind::Pause]
        );
        assert_eq!(parse_faults("none").unwrap(), Vec::<FaultKind>::new());
        let e = parse_faults("partition,kil").unwrap_err();
        assert!(
            e.contains("\"kil\"") && e.contains("partition, kill"),
            "{e}"
        );
        assert!(parse_faults("none,kill").unwrap_err().contains("none"));
        assert!(parse_faults("kill,").unwrap_err().contains("empty"));
    }

    #[test]
    fn targets_have_the_promised_sizes() {
        let nodes = [1, 2, 3, 4, 5];
        let mut rng = Rng::new(3);
        assert_eq!(Targets::One.pick(&nodes, &[], &mut rng).len(), 1);
        assert_eq!(Targets::Minority.pick(&nodes, &[], &mut rng).len(), 2);
        assert_eq!(Targets::Majority.pick(&nodes, &[], &mut rng).len(), 3);
        assert_eq!(Targets::All.pick(&nodes, &[], &mut rng), nodes.to_vec());
        let led = Targets::Leaders.pick(&nodes, &[2, 3, 5], &mut rng);
        assert_eq!(led.len(), 2);
        assert!(led.iter().all(|n| [2, 3, 5].contains(n)));
        assert_eq!(Targets::Leaders.pick(&nodes, &[4], &mut rng), vec![4]);
        assert_eq!(Targets::Minority.pick(&[1, 2, 3], &[], &mut rng).len(), 1);
    }

    #[test]
    fn disk_faults_cover_one_minority_and_a_power_cut_each_torn_or_not() {
        let names: Vec<String> = FaultKind::Disk.variants().iter().map(Fault::name).collect();
        assert_eq!(
            names,
            [
                "disk-one",
                "disk-one-torn",
                "disk-minority",
                "disk-minority-torn",
                "disk-all",
                "disk-all-torn"
            ]
        );
        assert_eq!(
            parse_faults("disk,kill").unwrap(),
            [FaultKind::Kill, FaultKind::Disk]
        );
    }

    #[test]
    fn a_deposed_leader_is_resumed_after_the_op_timeout_and_before_the_heal() {
        let s = Duration::from_secs;
        let depose = Fault::Depose;
        // Long enough for clients to give up on it and for an election, short of the heal.
        assert_eq!(
            depose.resume_after(s(2), s(5)),
            Some(Duration::from_millis(3500))
        );
        assert_eq!(
            depose.resume_after(s(2), s(3)),
            Some(Duration::from_millis(2100))
        );
        assert_eq!(Fault::Kill(Targets::One).resume_after(s(2), s(5)), None);
        assert_eq!(depose.name(), "depose-leaders");
    }

    #[test]
    fn every_kind_has_variants_and_a_colour() {
        for kind in FaultKind::ALL {
            let variants = kind.variants();
            assert!(!variants.is_empty());
            assert!(variants
                .iter()
                .all(|v| v.kind() == kind && v.color().starts_with('#')));
        }
    }
}
