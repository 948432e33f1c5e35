//! The peer wire format: how a batch of Raft messages for many groups travels between two nodes.
//!
//! Pure encoding and decoding; the sockets live in `transport.rs`. A connection carries frames,
//! each `u32 length (big endian) | payload`. The first frame of a connection is a `Hello` naming
//! the dialing node; every later frame is a `Batch`: all the messages one driver round produced
//! for that peer, for every group they share. Heartbeats therefore travel coalesced: one frame a
//! heartbeat interval between two nodes, whatever the number of groups.
//!
//! Every decode failure is a typed error; nothing here panics on bytes from the network, and no
//! allocation is sized by a length that was not checked against the bytes actually present.

use crate::raft::{
    Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, Snapshot, SnapshotMeta, Term,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Identifies a Raft group (a shard) on the wire.
pub type GroupWireId = u32;

/// The largest frame a node accepts; a larger length prefix closes the connection.
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Protocol version carried in `Hello`; a mismatch closes the connection.
pub const WIRE_VERSION: u16 = 1;

const FRAME_HELLO: u8 = 1;
const FRAME_BATCH: u8 = 2;
const FRAME_LEADERS: u8 = 3;

/// One frame of the peer protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerFrame {
    /// Opens a connection: who is dialing, and the cluster it belongs to.
    Hello {
        /// The dialing node.
        from: NodeId,
        /// A fingerprint of the cluster layout, so that nodes of two different clusters that
        /// happen to share ports never exchange messages.
        cluster_tag: u64,
    },
    /// Messages of one driver round for one peer.
    Batch(Vec<(GroupWireId, Message)>),
    /// The groups the sender leads, with their terms: sent once a heartbeat interval so that a
    /// node learns the leaders of shards it does not host (for `-MOVED` and `CLUSTER` replies).
    Leaders(Vec<(GroupWireId, Term)>),
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The frame ended before a field did.
    #[error("frame truncated while reading {0}")]
    Truncated(&'static str),
    /// A tag byte had no meaning.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which tag.
        what: &'static str,
        /// Its value.
        tag: u8,
    },
    /// The length prefix exceeds [`FRAME_BYTES_MAX`].
    #[error("frame of {0} bytes exceeds the limit of {FRAME_BYTES_MAX}")]
    TooLarge(usize),
    /// The peer speaks another version of the protocol.
    #[error("peer speaks wire version {0}, this node speaks {WIRE_VERSION}")]
    Version(u16),
    /// Bytes were left over after the frame's last field.
    #[error("{0} trailing bytes after the frame")]
    Trailing(usize),
}

/// Appends `frame`, length-prefixed, to `out`.
pub fn encode_frame(frame: &PeerFrame, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    match frame {
        PeerFrame::Hello { from, cluster_tag } => {
            out.put_u8(FRAME_HELLO);
            out.put_u16(WIRE_VERSION);
            out.put_u64(from.0);
            out.put_u64(*cluster_tag);
        }
        PeerFrame::Batch(msgs) => {
            out.put_u8(FRAME_BATCH);
            out.put_u32(msgs.len() as u32);
            for (group, msg) in msgs {
                out.put_u32(*group);
                encode_message(msg, out);
            }
        }
        PeerFrame::Leaders(led) => {
            out.put_u8(FRAME_LEADERS);
            out.put_u32(led.len() as u32);
            for (group, term) in led {
                out.put_u32(*group);
                out.put_u64(term.0);
            }
        }
    }
    let len = out.len() - start - 4;
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Takes one whole frame off the front of `buf`, or returns `Ok(None)` when more bytes are needed.
///
/// # Errors
/// A frame that is too large or does not decode; the connection should then be closed.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<PeerFrame>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut payload = buf.split_to(len).freeze();
    let frame = decode_payload(&mut payload)?;
    if payload.has_remaining() {
        return Err(WireError::Trailing(payload.remaining()));
    }
    Ok(Some(frame))
}

fn decode_payload(b: &mut Bytes) -> Result<PeerFrame, WireError> {
    match get_u8(b, "frame kind")? {
        FRAME_HELLO => {
            let version = get_u16(b, "version")?;
            if version != WIRE_VERSION {
                return Err(WireError::Version(version));
            }
            Ok(PeerFrame::Hello {
                from: NodeId(get_u64(b, "hello.from")?),
                cluster_tag: get_u64(b, "hello.cluster_tag")?,
            })
        }
        FRAME_BATCH => {
            let count = get_u32(b, "batch.count")? as usize;
            // Each message takes at least 26 bytes: never trust the count beyond that.
            let mut msgs = Vec::with_capacity(count.min(b.remaining() / 26));
            for _ in 0..count {
                let group = get_u32(b, "batch.group")?;
                msgs.push((group, decode_message(b)?));
            }
            Ok(PeerFrame::Batch(msgs))
        }
        FRAME_LEADERS => {
            let count = get_u32(b, "leaders.count")? as usize;
            let mut led = Vec::with_capacity(count.min(b.remaining() / 12));
            for _ in 0..count {
                led.push((
                    get_u32(b, "leaders.group")?,
                    Term(get_u64(b, "leaders.term")?),
                ));
            }
            Ok(PeerFrame::Leaders(led))
        }
        tag => Err(WireError::UnknownTag { what: "frame", tag }),
    }
}

const MSG_VOTE: u8 = 1;
const MSG_VOTE_RESP: u8 = 2;
const MSG_APPEND: u8 = 3;
const MSG_APPEND_RESP: u8 = 4;
const MSG_HEARTBEAT: u8 = 5;
const MSG_HEARTBEAT_RESP: u8 = 6;
const MSG_SNAPSHOT: u8 = 7;
const MSG_TIMEOUT_NOW: u8 = 8;

fn encode_message(m: &Message, out: &mut BytesMut) {
    out.put_u64(m.from.0);
    out.put_u64(m.to.0);
    out.put_u64(m.term.0);
    match &m.body {
        MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
            transfer,
        } => {
            out.put_u8(MSG_VOTE);
            out.put_u8(u8::from(*pre_vote) | (u8::from(*transfer) << 1));
            out.put_u64(last_log_index.0);
            out.put_u64(last_log_term.0);
        }
        MessageBody::RequestVoteResponse { pre_vote, granted } => {
            out.put_u8(MSG_VOTE_RESP);
            out.put_u8(u8::from(*pre_vote) | (u8::from(*granted) << 1));
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } => {
            out.put_u8(MSG_APPEND);
            out.put_u64(prev_log_index.0);
            out.put_u64(prev_log_term.0);
            out.put_u64(commit.0);
            out.put_u32(entries.len() as u32);
            for e in entries {
                encode_entry(e, out);
            }
        }
        MessageBody::AppendEntriesResponse {
            reject,
            index,
            reject_hint,
        } => {
            out.put_u8(MSG_APPEND_RESP);
            out.put_u8(u8::from(*reject) | (u8::from(reject_hint.is_some()) << 1));
            out.put_u64(index.0);
            if let Some((i, t)) = reject_hint {
                out.put_u64(i.0);
                out.put_u64(t.0);
            }
        }
        MessageBody::Heartbeat { commit, read_ctx } => {
            out.put_u8(MSG_HEARTBEAT);
            out.put_u64(commit.0);
            put_opt_u64(out, *read_ctx);
        }
        MessageBody::HeartbeatResponse { read_ctx } => {
            out.put_u8(MSG_HEARTBEAT_RESP);
            put_opt_u64(out, *read_ctx);
        }
        MessageBody::InstallSnapshot { snapshot } => {
            out.put_u8(MSG_SNAPSHOT);
            out.put_u64(snapshot.meta.index.0);
            out.put_u64(snapshot.meta.term.0);
            out.put_u32(snapshot.meta.voters.len() as u32);
            for v in &snapshot.meta.voters {
                out.put_u64(v.0);
            }
            out.put_u32(snapshot.data.len() as u32);
            out.put_slice(&snapshot.data);
        }
        MessageBody::TimeoutNow => out.put_u8(MSG_TIMEOUT_NOW),
    }
}

fn decode_message(b: &mut Bytes) -> Result<Message, WireError> {
    let from = NodeId(get_u64(b, "message.from")?);
    let to = NodeId(get_u64(b, "message.to")?);
    let term = Term(get_u64(b, "message.term")?);
    let body = match get_u8(b, "message kind")? {
        MSG_VOTE => {
            let flags = get_u8(b, "vote.flags")?;
            MessageBody::RequestVote {
                pre_vote: flags & 1 != 0,
                transfer: flags & 2 != 0,
                last_log_index: LogIndex(get_u64(b, "vote.last_log_index")?),
                last_log_term: Term(get_u64(b, "vote.last_log_term")?),
            }
        }
        MSG_VOTE_RESP => {
            let flags = get_u8(b, "vote_response.flags")?;
            MessageBody::RequestVoteResponse {
                pre_vote: flags & 1 != 0,
                granted: flags & 2 != 0,
            }
        }
        MSG_APPEND => {
            let prev_log_index = LogIndex(get_u64(b, "append.prev_log_index")?);
            let prev_log_term = Term(get_u64(b, "append.prev_log_term")?);
            let commit = LogIndex(get_u64(b, "append.commit")?);
            let count = get_u32(b, "append.count")? as usize;
            let mut entries = Vec::with_capacity(count.min(b.remaining() / 21));
            for _ in 0..count {
                entries.push(decode_entry(b)?);
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            }
        }
        MSG_APPEND_RESP => {
            let flags = get_u8(b, "append_response.flags")?;
            let index = LogIndex(get_u64(b, "append_response.index")?);
            let reject_hint = if flags & 2 != 0 {
                Some((
                    LogIndex(get_u64(b, "append_response.hint_index")?),
                    Term(get_u64(b, "append_response.hint_term")?),
                ))
            } else {
                None
            };
            MessageBody::AppendEntriesResponse {
                reject: flags & 1 != 0,
                index,
                reject_hint,
            }
        }
        MSG_HEARTBEAT => MessageBody::Heartbeat {
            commit: LogIndex(get_u64(b, "heartbeat.commit")?),
            read_ctx: get_opt_u64(b, "heartbeat.read_ctx")?,
        },
        MSG_HEARTBEAT_RESP => MessageBody::HeartbeatResponse {
            read_ctx: get_opt_u64(b, "heartbeat_response.read_ctx")?,
        },
        MSG_SNAPSHOT => {
            let index = LogIndex(get_u64(b, "snapshot.index")?);
            let term = Term(get_u64(b, "snapshot.term")?);
            let voter_count = get_u32(b, "snapshot.voter_count")? as usize;
            let mut voters = Vec::with_capacity(voter_count.min(b.remaining() / 8));
            for _ in 0..voter_count {
                voters.push(NodeId(get_u64(b, "snapshot.voter")?));
            }
            let data = get_bytes(b, "snapshot.data")?;
            MessageBody::InstallSnapshot {
                snapshot: Snapshot {
                    meta: SnapshotMeta {
                        index,
                        term,
                        voters,
                    },
                    data,
                },
            }
        }
        MSG_TIMEOUT_NOW => MessageBody::TimeoutNow,
        tag => {
            return Err(WireError::UnknownTag {
                what: "message",
                tag,
            })
        }
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn encode_entry(e: &Entry, out: &mut BytesMut) {
    out.put_u64(e.term.0);
    out.put_u64(e.index.0);
    out.put_u8(match e.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
    });
    out.put_u32(e.data.len() as u32);
    out.put_slice(&e.data);
}

fn decode_entry(b: &mut Bytes) -> Result<Entry, WireError> {
    let term = Term(get_u64(b, "entry.term")?);
    let index = LogIndex(get_u64(b, "entry.index")?);
    let kind = match get_u8(b, "entry.kind")? {
        0 => EntryKind::Normal,
        1 => EntryKind::Noop,
        tag => return Err(WireError::UnknownTag { what: "entry", tag }),
    };
    let data = get_bytes(b, "entry.data")?;
    Ok(Entry {
        term,
        index,
        kind,
        data,
    })
}

fn put_opt_u64(out: &mut BytesMut, v: Option<u64>) {
    match v {
        Some(v) => {
            out.put_u8(1);
            out.put_u64(v);
        }
        None => out.put_u8(0),
    }
}

fn get_opt_u64(b: &mut Bytes, what: &'static str) -> Result<Option<u64>, WireError> {
    match get_u8(b, what)? {
        0 => Ok(None),
        1 => Ok(Some(get_u64(b, what)?)),
        tag => Err(WireError::UnknownTag { what, tag }),
    }
}

fn get_u8(b: &mut Bytes, what: &'static str) -> Result<u8, WireError> {
    if b.remaining() < 1 {
        return Err(WireError::Truncated(what));
    }
    Ok(b.get_u8())
}

fn get_u16(b: &mut Bytes, what: &'static str) -> Result<u16, WireError> {
    if b.remaining() < 2 {
        return Err(WireError::Truncated(what));
    }
    Ok(b.get_u16())
}

fn get_u32(b: &mut Bytes, what: &'static str) -> Result<u32, WireError> {
    if b.remaining() < 4 {
        return Err(WireError::Truncated(what));
    }
    Ok(b.get_u32())
}

fn get_u64(b: &mut Bytes, what: &'static str) -> Result<u64, WireError> {
    if b.remaining() < 8 {
        return Err(WireError::Truncated(what));
    }
    Ok(b.get_u64())
}

fn get_bytes(b: &mut Bytes, what: &'static str) -> Result<Bytes, WireError> {
    let len = get_u32(b, what)? as usize;
    if b.remaining() < len {
        return Err(WireError::Truncated(what));
    }
    Ok(b.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<(GroupWireId, Message)> {
        let m = |body| Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(7),
            body,
        };
        vec![
            (
                0,
                m(MessageBody::RequestVote {
                    pre_vote: true,
                    last_log_index: LogIndex(9),
                    last_log_term: Term(6),
                    transfer: false,
                }),
            ),
            (
                1,
                m(MessageBody::RequestVoteResponse {
                    pre_vote: false,
                    granted: true,
                }),
            ),
            (
                2,
                m(MessageBody::AppendEntries {
                    prev_log_index: LogIndex(3),
                    prev_log_term: Term(2),
                    entries: vec![
                        Entry {
                            term: Term(7),
                            index: LogIndex(4),
                            kind: EntryKind::Noop,
                            data: Bytes::new(),
                        },
                        Entry {
                            term: Term(7),
                            index: LogIndex(5),
                            kind: EntryKind::Normal,
                            data: Bytes::from_static(b"set x 1"),
                        },
                    ],
                    commit: LogIndex(3),
                }),
            ),
            (
                3,
                m(MessageBody::AppendEntriesResponse {
                    reject: true,
                    index: LogIndex(5),
                    reject_hint: Some((LogIndex(2), Term(1))),
                }),
            ),
            (
                4,
                m(MessageBody::Heartbeat {
                    commit: LogIndex(5),
                    read_ctx: Some(42),
                }),
            ),
            (4, m(MessageBody::HeartbeatResponse { read_ctx: None })),
            (
                5,
                m(MessageBody::InstallSnapshot {
                    snapshot: Snapshot {
                        meta: SnapshotMeta {
                            index: LogIndex(100),
                            term: Term(5),
                            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                        },
                        data: Bytes::from_static(b"state"),
                    },
                }),
            ),
            (6, m(MessageBody::TimeoutNow)),
        ]
    }

    #[test]
    fn every_message_kind_round_trips() {
        let frames = [
            PeerFrame::Hello {
                from: NodeId(3),
                cluster_tag: 0xfeed,
            },
            PeerFrame::Batch(sample_messages()),
            PeerFrame::Leaders(vec![(0, Term(3)), (7, Term(9))]),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            encode_frame(f, &mut buf);
        }
        for f in &frames {
            assert_eq!(decode_frame(&mut buf).unwrap().as_ref(), Some(f));
        }
        assert!(buf.is_empty());
        assert_eq!(decode_frame(&mut buf), Ok(None));
    }

    #[test]
    fn partial_frame_waits_for_more_bytes() {
        let mut whole = BytesMut::new();
        encode_frame(&PeerFrame::Batch(sample_messages()), &mut whole);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(decode_frame(&mut part), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn truncated_payload_is_an_error_not_a_panic() {
        let mut whole = BytesMut::new();
        encode_frame(&PeerFrame::Batch(sample_messages()), &mut whole);
        let payload_len = whole.len() - 4;
        for short in 1..payload_len {
            // Claim a shorter payload than the messages need: decoding must fail cleanly.
            let mut buf = BytesMut::new();
            buf.put_u32(short as u32);
            buf.put_slice(&whole[4..4 + short]);
            assert!(decode_frame(&mut buf).is_err(), "length {short}");
        }
    }

    #[test]
    fn oversized_length_prefix_is_rejected() {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        assert_eq!(
            decode_frame(&mut buf),
            Err(WireError::TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn unknown_tags_and_versions_are_rejected() {
        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_u8(99);
        assert_eq!(
            decode_frame(&mut buf),
            Err(WireError::UnknownTag {
                what: "frame",
                tag: 99
            })
        );
        let mut buf = BytesMut::new();
        buf.put_u32(19);
        buf.put_u8(FRAME_HELLO);
        buf.put_u16(WIRE_VERSION + 1);
        buf.put_u64(1);
        buf.put_u64(1);
        assert_eq!(
            decode_frame(&mut buf),
            Err(WireError::Version(WIRE_VERSION + 1))
        );
    }
}
