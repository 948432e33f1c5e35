//! Unit tests of the protocol rules, each named after the rule it checks. They step the core
//! directly and assert the exact messages and state it produces.

use super::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn config(id: u64, n: u64) -> Config {
    let mut c = Config::new(NodeId(id), ids(n), 42);
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("e{index}")),
    }
}

/// A node restored with entries of the given terms (index 1, 2, ...) and hard state term.
fn restored(terms: &[u64], term: u64, commit: u64) -> Restored {
    Restored {
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries: terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as u64 + 1, t))
            .collect(),
    }
}

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

/// Takes the node's Ready, pretends it was persisted and applied, and returns it.
fn drain(node: &mut RawNode) -> Ready {
    let rd = node.ready();
    node.advance(rd.clone());
    rd
}

fn vote_request(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(last_index),
            last_log_term: Term(last_term),
            transfer: false,
        },
    )
}

fn vote_response(from: u64, to: u64, term: u64, granted: bool) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted,
        },
    )
}

/// A cluster whose messages are delivered at once, except to or from isolated nodes.
struct Cluster {
    nodes: BTreeMap<NodeId, RawNode>,
    isolated: BTreeSet<NodeId>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    reads: BTreeMap<NodeId, Vec<ReadState>>,
}

impl Cluster {
    fn new(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut c = config(id, n);
            tweak(&mut c);
            nodes.insert(NodeId(id), RawNode::new(c, Restored::default()).unwrap());
        }
        Cluster {
            nodes,
            isolated: BTreeSet::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Runs every Ready and delivers every message until nothing moves.
    fn stabilize(&mut self) {
        let mut queue = VecDeque::new();
        loop {
            for (id, node) in &mut self.nodes {
                while node.has_ready() {
                    let rd = drain(node);
                    self.applied
                        .entry(*id)
                        .or_default()
                        .extend(rd.committed_entries);
                    self.reads.entry(*id).or_default().extend(rd.read_states);
                    queue.extend(rd.messages);
                }
            }
            if queue.is_empty() {
                return;
            }
            while let Some(m) = queue.pop_front() {
                if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                    continue;
                }
                self.nodes.get_mut(&m.to).unwrap().step(m).unwrap();
            }
        }
    }

    fn elect(&mut self, id: u64) {
        self.node(id).campaign();
        self.stabilize();
        assert_eq!(self.node(id).status().role, Role::Leader);
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.stabilize();
        }
    }
}

// ---- §5.2 elections -----------------------------------------------------------------------

#[test]
fn vote_granted_at_most_once_per_term() {
    let mut n = RawNode::new(config(1, 3), Restored::default()).unwrap();
    n.step(vote_request(2, 1, 1, 0, 0)).unwrap();
    let rd = drain(&mut n);
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: Term(1),
            vote: Some(NodeId(2)),
            commit: LogIndex(0)
        })
    );
    assert_eq!(rd.messages, vec![vote_response(1, 2, 1, true)]);
    // A second candidate of the same term is refused; the first may ask again (lost answer).
    n.step(vote_request(3, 1, 1, 0, 0)).unwrap();
    n.step(vote_request(2, 1, 1, 0, 0)).unwrap();
    let rd = drain(&mut n);
    assert_eq!(rd.hard_state, None);
    assert_eq!(
        rd.messages,
        vec![vote_response(1, 3, 1, false), vote_response(1, 2, 1, true)]
    );
    // A new term allows a new vote.
    n.step(vote_request(3, 1, 2, 0, 0)).unwrap();
    assert_eq!(drain(&mut n).messages, vec![vote_response(1, 3, 2, true)]);
}

#[test]
fn vote_only_for_log_at_least_as_up_to_date() {
    // Our log: terms [1, 1, 2]; last (3, t2).
    let cases = [
        (5, 1, false), // longer but older last term
        (2, 2, false), // same last term, shorter
        (3, 2, true),  // identical
        (4, 2, true),  // same term, longer
        (1, 3, true),  // newer last term wins regardless of length
    ];
    for (last_index, last_term, granted) in cases {
        let mut n = RawNode::new(config(1, 3), restored(&[1, 1, 2], 2, 0)).unwrap();
        n.step(vote_request(2, 1, 3, last_index, last_term))
            .unwrap();
        // The higher term is adopted either way, so both answers carry term 3.
        assert_eq!(
            drain(&mut n).messages,
            vec![vote_response(1, 2, 3, granted)],
            "candidate last ({last_index}, t{last_term})"
        );
        assert_eq!(n.status().vote, granted.then_some(NodeId(2)));
    }
}

#[test]
fn candidate_with_majority_becomes_leader_and_appends_noop() {
    let mut n = RawNode::new(config(1, 3), Restored::default()).unwrap();
    n.campaign();
    let rd = drain(&mut n);
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: Term(1),
            vote: Some(NodeId(1)),
            commit: LogIndex(0)
        })
    );
    assert_eq!(
        rd.messages,
        vec![vote_request(1, 2, 1, 0, 0), vote_request(1, 3, 1, 0, 0)]
    );
    n.step(vote_response(2, 1, 1, true)).unwrap();
    assert_eq!(n.status().role, Role::Leader);
    let rd = drain(&mut n);
    let noop = Entry {
        term: Term(1),
        index: LogIndex(1),
        kind: EntryKind::Noop,
        data: Bytes::new(),
    };
    assert_eq!(rd.entries, vec![noop.clone()]);
    let append = |to| {
        msg(
            1,
            to,
            1,
            MessageBody::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![noop.clone()],
                commit: LogIndex(0),
            },
        )
    };
    assert_eq!(rd.messages, vec![append(2), append(3)]);
}

#[test]
fn election_timeout_is_randomized_within_one_to_two_election_timeouts() {
    for seed in 0..20 {
        let mut c = config(1, 3);
        c.seed = seed;
        let mut n = RawNode::new(c, Restored::default()).unwrap();
        let mut ticks = 0;
        while n.status().role == Role::Follower {
            n.tick();
            ticks += 1;
        }
        assert!((10..20).contains(&ticks), "seed {seed}: {ticks} ticks");
    }
}

// ---- §5.1 terms ---------------------------------------------------------------------------

#[test]
fn stale_term_message_rejected_and_stale_leader_learns_term() {
    let mut c = Cluster::new(3, |c| c.pre_vote = true);
    c.elect(1);
    // n1 is cut off; n2 wins term 2.
    c.isolated.insert(NodeId(1));
    c.elect(2);
    assert_eq!(c.node(2).status().term, Term(2));
    // n1 still believes it leads term 1. Its heartbeat to n3 is answered with term 2 ...
    let hb = msg(
        1,
        3,
        1,
        MessageBody::Heartbeat {
            commit: LogIndex(1),
            read_ctx: None,
        },
    );
    c.node(3).step(hb).unwrap();
    let rd = drain(c.node(3));
    let answer = msg(
        3,
        1,
        2,
        MessageBody::AppendEntriesResponse {
            reject: false,
            index: LogIndex(0),
            reject_hint: None,
        },
    );
    assert_eq!(rd.messages, vec![answer.clone()]);
    assert_eq!(c.node(3).status().leader, Some(NodeId(2)));
    // ... and that answer makes n1 step down into term 2.
    c.node(1).step(answer).unwrap();
    let st = c.node(1).status();
    assert_eq!(
        (st.role, st.term, st.leader),
        (Role::Follower, Term(2), None)
    );
    // A stale vote answer changes nothing.
    c.node(2).step(vote_response(3, 2, 1, false)).unwrap();
    assert_eq!(c.node(2).status().role, Role::Leader);
}

#[test]
fn step_rejects_misaddressed_and_unknown_messages() {
    let mut n = RawNode::new(config(1, 3), Restored::default()).unwrap();
    assert_eq!(
        n.step(vote_request(2, 3, 1, 0, 0)),
        Err(StepError::WrongRecipient {
            to: NodeId(3),
            id: NodeId(1)
        })
    );
    assert_eq!(
        n.step(vote_request(9, 1, 1, 0, 0)),
        Err(StepError::UnknownSender { from: NodeId(9) })
    );
    assert_eq!(
        n.step(vote_request(1, 1, 1, 0, 0)),
        Err(StepError::UnknownSender { from: NodeId(1) })
    );
    assert!(!n.has_ready());
}

// ---- §5.3 replication -----------------------------------------------------------------------

#[test]
fn conflict_backtracking_uses_hint_to_skip_a_term_per_round() {
    // Leader-to-be n1 and n3: terms [1,1,1,4,4,5,5,6,6,6]; n2 diverged: [1,1,1,2,2,2,3,3,3,3,3].
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let mut n1 = RawNode::new(config(1, 3), restored(&leader_log, 6, 3)).unwrap();
    let mut n2 = RawNode::new(
        config(2, 3),
        restored(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 6, 3),
    )
    .unwrap();
    n1.campaign();
    let _ = drain(&mut n1);
    n1.step(vote_response(3, 1, 7, true)).unwrap();
    let mut rejections = 0;
    let mut queue: VecDeque<Message> = drain(&mut n1).messages.into();
    while let Some(m) = queue.pop_front() {
        if m.to == NodeId(2) {
            n2.step(m).unwrap();
            for r in drain(&mut n2).messages {
                if matches!(
                    r.body,
                    MessageBody::AppendEntriesResponse { reject: true, .. }
                ) {
                    rejections += 1;
                }
                n1.step(r).unwrap();
            }
            queue.extend(drain(&mut n1).messages);
        }
    }
    // The first probe (prev 10, t6) is rejected with hint (10, t3): the leader's
    // largest index with term <= 3 is 3, so the second probe (prev 3, t1) matches at once.
    assert_eq!(rejections, 1);
    let st2 = n2.status();
    assert_eq!(st2.last_index, LogIndex(11));
    assert_eq!(st2.commit, LogIndex(11));
    assert_eq!(n2.raft.log.term(LogIndex(4)), Some(Term(4)));
    assert_eq!(n2.raft.log.term(LogIndex(11)), Some(Term(7)));
}

#[test]
fn follower_truncates_conflicting_uncommitted_suffix() {
    let mut n = RawNode::new(config(2, 3), restored(&[1, 1, 2, 2], 3, 2)).unwrap();
    let append = msg(
        1,
        2,
        3,
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(2),
            prev_log_term: Term(1),
            entries: vec![entry(3, 3)],
            commit: LogIndex(3),
        },
    );
    n.step(append).unwrap();
    let rd = drain(&mut n);
    assert_eq!(rd.entries, vec![entry(3, 3)]);
    assert_eq!(
        rd.messages,
        vec![msg(
            2,
            1,
            3,
            MessageBody::AppendEntriesResponse {
                reject: false,
                index: LogIndex(3),
                reject_hint: None
            }
        )]
    );
    assert_eq!(n.status().last_index, LogIndex(3));
    assert_eq!(n.status().commit, LogIndex(3));
}

#[test]
#[should_panic(expected = "committed")]
fn committed_entry_is_never_truncated() {
    let mut n = RawNode::new(config(2, 3), restored(&[1, 1, 2, 2], 3, 4)).unwrap();
    n.raft
        .log
        .maybe_append(LogIndex(2), Term(1), LogIndex(4), vec![entry(3, 3)]);
}

#[test]
fn commit_only_by_counting_current_term_entries() {
    // Figure 8: n1 holds an uncommitted entry of term 2 at index 2 and becomes leader of term
    // 3. A majority holding index 2 must not commit it; only the term-3 no-op at 3 can.
    let mut n1 = RawNode::new(config(1, 3), restored(&[1, 2], 2, 1)).unwrap();
    n1.campaign();
    let _ = drain(&mut n1);
    n1.step(vote_response(2, 1, 3, true)).unwrap();
    let _ = drain(&mut n1); // persists the no-op at 3
    let ack = |index| {
        msg(
            2,
            1,
            3,
            MessageBody::AppendEntriesResponse {
                reject: false,
                index: LogIndex(index),
                reject_hint: None,
            },
        )
    };
    n1.step(ack(2)).unwrap();
    assert_eq!(n1.status().commit, LogIndex(1), "term-2 entry counted");
    n1.step(ack(3)).unwrap();
    assert_eq!(n1.status().commit, LogIndex(3));
    let rd = drain(&mut n1);
    let indexes: Vec<u64> = rd.committed_entries.iter().map(|e| e.index.0).collect();
    assert_eq!(indexes, vec![2, 3]);
}

#[test]
fn leader_counts_itself_only_after_persisting() {
    let mut n = RawNode::new(config(1, 1), Restored::default()).unwrap();
    n.campaign();
    assert_eq!(n.status().role, Role::Leader);
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 1);
    assert_eq!(n.status().commit, LogIndex(0), "committed before persisted");
    n.advance(rd);
    assert_eq!(n.status().commit, LogIndex(1));
    let rd = drain(&mut n);
    assert_eq!(rd.committed_entries.len(), 1);
    assert_eq!(n.status().applied, LogIndex(1));
}

#[test]
fn heartbeat_commit_is_capped_at_follower_match() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.isolated.insert(NodeId(3));
    c.node(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize();
    assert_eq!(c.node(1).status().commit, LogIndex(2));
    c.node(1).tick();
    let beats: Vec<Message> = drain(c.node(1))
        .messages
        .into_iter()
        .filter(|m| m.is_heartbeat())
        .collect();
    let hb = |to, commit| {
        msg(
            1,
            to,
            1,
            MessageBody::Heartbeat {
                commit: LogIndex(commit),
                read_ctx: None,
            },
        )
    };
    // n3 was cut off after it acknowledged the no-op at 1, so it is told commit 1, not 2.
    assert_eq!(beats, vec![hb(2, 2), hb(3, 1)]);
}

#[test]
fn inflight_window_bounds_messages_in_replicate_state() {
    let mut c = Cluster::new(2, |c| {
        c.inflight_msgs_max = 3;
        c.msg_bytes_max = 64;
    });
    c.elect(1);
    c.isolated.insert(NodeId(2));
    for _ in 0..20 {
        c.node(1).propose(Bytes::from_static(&[7; 30])).unwrap();
    }
    let appends = drain(c.node(1))
        .messages
        .into_iter()
        .filter(
            |m| matches!(&m.body, MessageBody::AppendEntries { entries, .. } if entries.len() == 1),
        )
        .count();
    assert_eq!(
        appends, 3,
        "one 54-byte entry per 64-byte message, 3 in flight"
    );
}

// ---- thesis §6.2 / §9.6: check-quorum and pre-vote ------------------------------------------

#[test]
fn check_quorum_leader_steps_down_without_majority() {
    let mut c = Cluster::new(3, |c| c.check_quorum = true);
    c.elect(1);
    c.isolated.insert(NodeId(2));
    c.isolated.insert(NodeId(3));
    let mut ticks = 0;
    while c.node(1).status().role == Role::Leader {
        c.node(1).tick();
        let _ = drain(c.node(1));
        ticks += 1;
        assert!(ticks <= 20, "leader without majority kept leading");
    }
    // The first check finds everyone active (just elected), the second does not.
    assert_eq!(ticks, 20);
    assert_eq!(c.node(1).status().term, Term(1));
}

#[test]
fn pre_vote_partitioned_node_does_not_disrupt_stable_leader() {
    let mut c = Cluster::new(3, |c| {
        c.pre_vote = true;
        c.check_quorum = true;
    });
    c.elect(1);
    c.isolated.insert(NodeId(3));
    c.tick_all(100);
    // Pre-vote kept n3 from bumping its term while cut off.
    assert_eq!(c.node(3).status().term, Term(1));
    c.isolated.clear();
    c.node(3).campaign();
    c.stabilize();
    for id in 1..=3 {
        assert_eq!(c.node(id).status().term, Term(1), "n{id}");
    }
    assert_eq!(c.node(1).status().role, Role::Leader);
}

#[test]
fn lease_followers_ignore_vote_requests_while_leader_is_live() {
    let mut c = Cluster::new(3, |c| c.check_quorum = true);
    c.elect(1);
    c.node(2).step(vote_request(3, 2, 5, 10, 5)).unwrap();
    assert!(
        !c.node(2).has_ready(),
        "vote request within lease was answered"
    );
    assert_eq!(c.node(2).status().term, Term(1));
    // With transfer set the lease does not apply.
    let mut req = vote_request(3, 2, 5, 10, 5);
    if let MessageBody::RequestVote { transfer, .. } = &mut req.body {
        *transfer = true;
    }
    c.node(2).step(req).unwrap();
    assert_eq!(
        drain(c.node(2)).messages,
        vec![vote_response(2, 3, 5, true)]
    );
}

#[test]
fn pre_vote_response_does_not_change_receiver_term_or_vote() {
    let mut c = config(1, 3);
    c.pre_vote = true;
    let mut n = RawNode::new(c, restored(&[1], 1, 0)).unwrap();
    let mut req = vote_request(2, 1, 2, 1, 1);
    if let MessageBody::RequestVote { pre_vote, .. } = &mut req.body {
        *pre_vote = true;
    }
    n.step(req).unwrap();
    let rd = drain(&mut n);
    assert_eq!(rd.hard_state, None);
    assert_eq!(
        rd.messages,
        vec![msg(
            1,
            2,
            2,
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true
            }
        )]
    );
    assert_eq!((n.status().term, n.status().vote), (Term(1), None));
}

// ---- thesis §6.4: ReadIndex -----------------------------------------------------------------

#[test]
fn read_index_waits_for_first_commit_in_term() {
    let mut c = Cluster::new(3, |_| {});
    c.node(1).campaign();
    // Deliver the votes by hand so the no-op is not replicated yet.
    let _ = drain(c.node(1));
    c.node(1).step(vote_response(2, 1, 1, true)).unwrap();
    c.node(1).read_index(7).unwrap();
    let rd = drain(c.node(1));
    assert!(rd.read_states.is_empty());
    assert!(
        rd.messages.iter().all(|m| !m.is_heartbeat()),
        "no confirmation round before the term's first commit"
    );
    for m in rd.messages {
        c.node(m.to.0).step(m).unwrap();
    }
    c.stabilize();
    assert_eq!(
        c.reads[&NodeId(1)],
        vec![ReadState {
            ctx: 7,
            index: LogIndex(1)
        }]
    );
    // A follower refuses and names the leader.
    assert_eq!(
        c.node(2).read_index(8),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

#[test]
fn read_index_needs_a_majority_of_heartbeat_acks() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.isolated.insert(NodeId(2));
    c.isolated.insert(NodeId(3));
    c.node(1).read_index(9).unwrap();
    c.stabilize();
    assert!(c.reads.get(&NodeId(1)).is_none_or(|r| r.is_empty()));
    c.isolated.remove(&NodeId(3));
    c.node(1).tick(); // the periodic heartbeat carries the pending read's ctx
    c.stabilize();
    assert_eq!(
        c.reads[&NodeId(1)],
        vec![ReadState {
            ctx: 9,
            index: LogIndex(1)
        }]
    );
}

#[test]
fn read_index_fails_when_leadership_is_lost() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.isolated.insert(NodeId(1));
    c.node(1).read_index(5).unwrap();
    c.elect(2);
    c.isolated.clear();
    c.node(2).tick();
    let mut failed = Vec::new();
    c.node(2).tick();
    for _ in 0..3 {
        let rd = drain(c.node(2));
        for m in rd.messages {
            if m.to == NodeId(1) {
                c.node(1).step(m).unwrap();
            }
        }
        failed.extend(drain(c.node(1)).failed_reads);
    }
    assert_eq!(failed, vec![5]);
}

#[test]
fn single_node_read_released_once_term_committed() {
    let mut n = RawNode::new(config(1, 1), Restored::default()).unwrap();
    n.campaign();
    n.read_index(1).unwrap();
    let rd = n.ready();
    assert!(rd.read_states.is_empty());
    n.advance(rd); // persists the no-op: commits it and releases the read
    let rd = drain(&mut n);
    assert_eq!(
        rd.read_states,
        vec![ReadState {
            ctx: 1,
            index: LogIndex(1)
        }]
    );
    n.read_index(2).unwrap();
    assert_eq!(
        drain(&mut n).read_states,
        vec![ReadState {
            ctx: 2,
            index: LogIndex(1)
        }]
    );
}

// ---- §7 snapshots ---------------------------------------------------------------------------

#[test]
fn snapshot_install_on_follower_behind_compacted_log() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.isolated.insert(NodeId(3));
    for i in 0..5u8 {
        c.node(1).propose(Bytes::from(vec![i])).unwrap();
    }
    c.stabilize();
    assert_eq!(c.node(1).status().applied, LogIndex(6));
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(5),
            term: Term(1),
            voters: ids(3),
        },
        data: Bytes::from_static(b"state@5"),
    };
    c.node(1).compact(snapshot.clone());
    assert_eq!(c.node(1).status().first_index, LogIndex(6));
    c.isolated.clear();
    c.node(1).tick();
    // Heartbeat -> n3 answers -> leader probes -> n3 rejects -> leader sends the snapshot.
    let mut installed = None;
    for _ in 0..10 {
        let mut moved = false;
        for id in [1, 2, 3] {
            let rd = drain(c.node(id));
            if id == 3 && rd.snapshot.is_some() {
                installed = rd.snapshot.clone();
            }
            for m in rd.messages {
                moved = true;
                c.node(m.to.0).step(m).unwrap();
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(installed, Some(snapshot));
    let st = c.node(3).status();
    assert_eq!(st.snapshot, (LogIndex(5), Term(1)));
    assert_eq!(st.last_index, LogIndex(6));
    assert_eq!(st.commit, LogIndex(6));
    assert_eq!(st.applied, LogIndex(6));
    let lead = c.node(1).status();
    let p3 = lead.progress.iter().find(|p| p.id == NodeId(3)).unwrap();
    assert_eq!(
        (p3.match_index, p3.state),
        (LogIndex(6), ProgressState::Replicate)
    );
}

#[test]
fn snapshot_older_than_commit_is_ignored() {
    let mut n = RawNode::new(config(2, 3), restored(&[1, 1, 1], 1, 3)).unwrap();
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(2),
            term: Term(1),
            voters: ids(3),
        },
        data: Bytes::new(),
    };
    n.step(msg(
        1,
        2,
        1,
        MessageBody::InstallSnapshot { snapshot: snap },
    ))
    .unwrap();
    let rd = drain(&mut n);
    assert_eq!(rd.snapshot, None);
    assert_eq!(
        rd.messages,
        vec![msg(
            2,
            1,
            1,
            MessageBody::AppendEntriesResponse {
                reject: false,
                index: LogIndex(3),
                reject_hint: None
            }
        )]
    );
}

// ---- thesis §3.10: leadership transfer ------------------------------------------------------

#[test]
fn transfer_brings_target_up_to_date_then_sends_timeout_now() {
    let mut c = Cluster::new(3, |c| {
        c.check_quorum = true;
        c.pre_vote = true;
    });
    c.elect(1);
    c.isolated.insert(NodeId(2));
    c.node(1).propose(Bytes::from_static(b"a")).unwrap();
    c.stabilize();
    c.isolated.clear();
    c.node(1).transfer_leader(NodeId(2)).unwrap();
    assert_eq!(
        c.node(1).propose(Bytes::from_static(b"b")),
        Err(ProposeError::TransferInProgress)
    );
    let rd = drain(c.node(1));
    assert!(
        matches!(
            &rd.messages[..],
            [Message {
                to: NodeId(2),
                body: MessageBody::AppendEntries { .. },
                ..
            }]
        ),
        "target not up to date: entries first, got {:?}",
        rd.messages
    );
    for m in rd.messages {
        c.node(2).step(m).unwrap();
    }
    c.stabilize();
    assert_eq!(c.node(2).status().role, Role::Leader);
    assert_eq!(c.node(2).status().term, Term(2));
    assert_eq!(c.node(1).status().leader, Some(NodeId(2)));
}

#[test]
fn transfer_aborts_after_an_election_timeout() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.isolated.insert(NodeId(3));
    c.node(1).transfer_leader(NodeId(3)).unwrap();
    c.stabilize();
    for _ in 0..9 {
        c.node(1).tick();
    }
    assert_eq!(c.node(1).status().transfer_target, Some(NodeId(3)));
    c.node(1).tick();
    assert_eq!(c.node(1).status().transfer_target, None);
    assert!(c.node(1).propose(Bytes::from_static(b"x")).is_ok());
}

// ---- planted bugs (crate::bugs): each breaks exactly its rule, and only when on ----------

fn with_bug(mut c: Config, bug: Option<crate::bugs::Bug>) -> Config {
    if let Some(b) = bug {
        c.bugs.insert(b);
    }
    c
}

#[test]
fn planted_vote_twice_grants_a_second_candidate_in_one_term() {
    use crate::bugs::Bug;
    for bug in [None, Some(Bug::VoteTwice)] {
        let c = with_bug(config(1, 3), bug);
        let mut n = RawNode::new(c, restored(&[], 5, 0)).unwrap();
        n.step(vote_request(2, 1, 5, 0, 0)).unwrap();
        let rd = drain(&mut n);
        assert_eq!(rd.messages, vec![vote_response(1, 2, 5, true)]);
        n.step(vote_request(3, 1, 5, 0, 0)).unwrap();
        let rd = drain(&mut n);
        let granted = bug.is_some();
        assert_eq!(
            rd.messages,
            vec![vote_response(1, 3, 5, granted)],
            "{bug:?}"
        );
        // The first vote stays the recorded one either way.
        assert_eq!(rd.hard_state, None);
        assert_eq!(n.status().vote, Some(NodeId(2)));
    }
}

#[test]
fn planted_vote_twice_keeps_the_log_rule_and_pre_vote() {
    use crate::bugs::Bug;
    let c = with_bug(config(1, 3), Some(Bug::VoteTwice));
    // Our log: terms [1, 2]; a candidate with last (1, t1) is behind.
    let mut n = RawNode::new(c, restored(&[1, 2], 5, 0)).unwrap();
    n.step(vote_request(2, 1, 5, 2, 2)).unwrap();
    let _ = drain(&mut n);
    n.step(vote_request(3, 1, 5, 1, 1)).unwrap();
    assert_eq!(drain(&mut n).messages, vec![vote_response(1, 3, 5, false)]);
}

#[test]
fn planted_commit_old_term_commits_figure_8_entry_by_count() {
    use crate::bugs::Bug;
    for bug in [None, Some(Bug::CommitOldTerm)] {
        // Figure 8: n1 holds an uncommitted term-2 entry at index 2 and leads term 3.
        let c = with_bug(config(1, 3), bug);
        let mut n1 = RawNode::new(c, restored(&[1, 2], 2, 1)).unwrap();
        n1.campaign();
        let _ = drain(&mut n1);
        n1.step(vote_response(2, 1, 3, true)).unwrap();
        let _ = drain(&mut n1); // persists the no-op at 3
        n1.step(msg(
            2,
            1,
            3,
            MessageBody::AppendEntriesResponse {
                reject: false,
                index: LogIndex(2),
                reject_hint: None,
            },
        ))
        .unwrap();
        let expected = if bug.is_some() { 2 } else { 1 };
        assert_eq!(n1.status().commit, LogIndex(expected), "{bug:?}");
        let rd = drain(&mut n1);
        let indexes: Vec<u64> = rd.committed_entries.iter().map(|e| e.index.0).collect();
        let expected: Vec<u64> = if bug.is_some() { vec![2] } else { vec![] };
        assert_eq!(indexes, expected);
    }
}

#[test]
fn planted_read_index_without_quorum_releases_before_any_heartbeat_ack() {
    use crate::bugs::Bug;
    for bug in [None, Some(Bug::ReadIndexWithoutQuorum)] {
        let mut c = Cluster::new(3, |c| {
            if let Some(b) = bug {
                c.bugs.insert(b);
            }
        });
        c.elect(1);
        // Nobody can answer the heartbeat round.
        c.isolated.insert(NodeId(2));
        c.isolated.insert(NodeId(3));
        c.node(1).read_index(9).unwrap();
        c.stabilize();
        let released = c.reads.get(&NodeId(1)).cloned().unwrap_or_default();
        if bug.is_some() {
            assert_eq!(
                released,
                vec![ReadState {
                    ctx: 9,
                    index: LogIndex(1)
                }]
            );
        } else {
            assert!(
                released.is_empty(),
                "released without a quorum: {released:?}"
            );
            // One follower's ack makes a majority with the leader.
            c.isolated.remove(&NodeId(2));
            c.node(1).tick();
            c.stabilize();
            assert_eq!(
                c.reads[&NodeId(1)],
                vec![ReadState {
                    ctx: 9,
                    index: LogIndex(1)
                }]
            );
        }
    }
}
