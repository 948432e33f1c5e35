//! Client commands: turning a request [`Frame`] into a typed [`Request`], and back.
//!
//! The commands: PING, ECHO, QUIT, INFO, DBSIZE, CLUSTER (answered by the node itself); the
//! string commands GET, MGET, EXISTS (reads), SET [NX|XX|IFEQ], DEL, INCR, INCRBY, DECR, DECRBY,
//! MSET (writes); the set commands SMEMBERS, SISMEMBER, SCARD (reads), SADD, SREM (writes).
//!
//! One file per command holds its parsing rules (and, for the client side, its encoding). The
//! texts of [`CmdError`] are Redis's, so that Redis clients and people recognise them. This
//! module is pure: it validates and routes, it never executes. Writes become a state machine
//! [`Command`] executed after Raft commits it, reads a [`Query`] answered once ReadIndex
//! confirms the state is current; both answer an [`Outcome`] ([`crate::sm`] holds the rules,
//! WRONGTYPE included).

pub mod cluster;
pub mod dbsize;
pub mod decr;
pub mod decrby;
pub mod del;
pub mod echo;
pub mod exists;
pub mod get;
pub mod incr;
pub mod incrby;
pub mod info;
pub mod mget;
pub mod mset;
pub mod ping;
pub mod quit;
pub mod sadd;
pub mod scard;
pub mod set;
pub mod sismember;
pub mod smembers;
pub mod srem;

use crate::api::Frame;
use crate::shard::{key_slot, Slot};
use crate::sm::{Command, Outcome, Query, StateMachine};
use bytes::Bytes;

pub use crate::sm::SetCondition;
pub use cluster::ClusterRequest;
pub use set::SetArgs;

/// Bytes of the arguments quoted in an "unknown command" error (Redis quotes up to 128).
const UNKNOWN_ARGS_QUOTED_BYTES_MAX: usize = 128;

/// One parsed client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `PING [message]`: `+PONG`, or the message as a bulk string.
    Ping(Option<Bytes>),
    /// `ECHO message`.
    Echo(Bytes),
    /// `GET key`.
    Get(Bytes),
    /// `SET key value [NX | XX | IFEQ old]`.
    Set(SetArgs),
    /// `DEL key [key ...]`: the number of keys removed.
    Del(Vec<Bytes>),
    /// `EXISTS key [key ...]`: how many of the keys exist (a key named twice counts twice).
    Exists(Vec<Bytes>),
    /// `INCR key`.
    Incr(Bytes),
    /// `INCRBY key increment`.
    IncrBy {
        /// The key.
        key: Bytes,
        /// The increment.
        delta: i64,
    },
    /// `DECR key`.
    Decr(Bytes),
    /// `DECRBY key decrement`.
    DecrBy {
        /// The key.
        key: Bytes,
        /// The decrement (never `i64::MIN`, so that it can be negated).
        // Invariant: delta != i64::MIN (checked by the parser).
        delta: i64,
    },
    /// `MGET key [key ...]` (all keys in one slot).
    MGet(Vec<Bytes>),
    /// `MSET key value [key value ...]` (all keys in one slot).
    MSet(Vec<(Bytes, Bytes)>),
    /// `SADD key member [member ...]`: members added.
    SAdd {
        /// The set's key.
        key: Bytes,
        /// The members (at least one).
        members: Vec<Bytes>,
    },
    /// `SREM key member [member ...]`: members removed.
    SRem {
        /// The set's key.
        key: Bytes,
        /// The members (at least one).
        members: Vec<Bytes>,
    },
    /// `SMEMBERS key`: the members, sorted.
    SMembers(Bytes),
    /// `SISMEMBER key member`: 0 or 1.
    SIsMember {
        /// The set's key.
        key: Bytes,
        /// The member looked for.
        member: Bytes,
    },
    /// `SCARD key`: the number of members.
    SCard(Bytes),
    /// `DBSIZE`: keys held by the shards this node leads.
    DbSize,
    /// `INFO [section]`; the section is lower-cased.
    Info(Option<String>),
    /// `CLUSTER <subcommand>`.
    Cluster(ClusterRequest),
    /// `QUIT`: answer `+OK`, then close the connection.
    Quit,
}

/// Why a request frame is not a valid command. `Display` gives the exact error text to send
/// (without RESP's leading `-`): use [`CmdError::to_frame`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The frame is not an array of bulk strings.
    #[error("ERR Protocol error: {0}")]
    Protocol(String),
    /// An empty array. Redis sends no reply at all for it; a server may do the same.
    #[error("ERR empty command")]
    Empty,
    /// The command name is not one we serve. `args` holds the quoted first arguments, each
    /// followed by a space, exactly as Redis prints them.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (lossy UTF-8, at most 128 bytes).
        name: String,
        /// `'a' 'b' ` — the quoted arguments.
        args: String,
    },
    /// The subcommand of a container command (CLUSTER) is unknown.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The container command, upper-case (`CLUSTER`).
        command: &'static str,
        /// The subcommand as sent (lossy UTF-8, at most 128 bytes).
        sub: String,
    },
    /// Too few or too many arguments; holds the lower-case command name (`get`, `cluster|keyslot`).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// Bad or conflicting options (`SET k v NX XX`, unsupported `EX`).
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be a signed 64-bit decimal is not one (INCRBY's increment).
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// `DECRBY key -9223372036854775808`: the decrement cannot be negated (Redis's text).
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// A multi-key request whose keys do not all hash to one slot.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// A value larger than the server's limit (checked by the server, see
    /// [`Request::check_value_bytes`]).
    #[error("ERR value of {len} bytes exceeds value_bytes_max {max}")]
    ValueTooLarge {
        /// The value's size in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
}

impl CmdError {
    /// The error reply frame for this error.
    #[must_use]
    pub fn to_frame(&self) -> Frame {
        Frame::Error(self.to_string())
    }
}

/// The arguments of one request after its name, consumed front to back by a command's parser.
#[derive(Debug)]
pub struct Args {
    items: std::vec::IntoIter<Bytes>,
}

impl Args {
    /// Arguments not consumed yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.items.len()
    }

    /// The next argument, if any.
    pub fn next_bytes(&mut self) -> Option<Bytes> {
        self.items.next()
    }

    /// All arguments not consumed yet.
    pub fn rest(&mut self) -> Vec<Bytes> {
        self.items.by_ref().collect()
    }
}

fn lossy_prefix(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(UNKNOWN_ARGS_QUOTED_BYTES_MAX)]).into_owned()
}

impl Request {
    /// Parses a request frame: an array of bulk strings whose first is the command name, matched
    /// case-insensitively.
    ///
    /// # Errors
    ///
    /// A [`CmdError`] whose text is the reply to send; the connection stays usable.
    pub fn parse(frame: Frame) -> Result<Request, CmdError> {
        let Frame::Array(items) = frame else {
            return Err(CmdError::Protocol(
                "expected an array of bulk strings".into(),
            ));
        };
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Frame::Bulk(b) => parts.push(b),
                _ => {
                    return Err(CmdError::Protocol(
                        "expected an array of bulk strings".into(),
                    ))
                }
            }
        }
        let mut items = parts.into_iter();
        let Some(name) = items.next() else {
            return Err(CmdError::Empty);
        };
        let mut args = Args { items };
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        if is("get") {
            get::parse(&mut args)
        } else if is("set") {
            set::parse(&mut args)
        } else if is("ping") {
            ping::parse(&mut args)
        } else if is("echo") {
            echo::parse(&mut args)
        } else if is("del") {
            del::parse(&mut args)
        } else if is("exists") {
            exists::parse(&mut args)
        } else if is("incr") {
            incr::parse(&mut args)
        } else if is("incrby") {
            incrby::parse(&mut args)
        } else if is("decr") {
            decr::parse(&mut args)
        } else if is("decrby") {
            decrby::parse(&mut args)
        } else if is("sadd") {
            sadd::parse(&mut args)
        } else if is("srem") {
            srem::parse(&mut args)
        } else if is("smembers") {
            smembers::parse(&mut args)
        } else if is("sismember") {
            sismember::parse(&mut args)
        } else if is("scard") {
            scard::parse(&mut args)
        } else if is("mget") {
            mget::parse(&mut args)
        } else if is("mset") {
            mset::parse(&mut args)
        } else if is("dbsize") {
            dbsize::parse(&mut args)
        } else if is("info") {
            info::parse(&mut args)
        } else if is("cluster") {
            cluster::parse(&mut args)
        } else if is("quit") {
            quit::parse(&mut args)
        } else {
            Err(unknown_command(&name, args.rest()))
        }
    }

    /// The request as a client sends it: an array of bulk strings that [`Request::parse`] turns
    /// back into this request.
    #[must_use]
    pub fn to_frame(&self) -> Frame {
        let parts: Vec<Bytes> = match self {
            Request::Ping(msg) => ping::to_args(msg.as_ref()),
            Request::Echo(msg) => echo::to_args(msg),
            Request::Get(key) => get::to_args(key),
            Request::Set(args) => set::to_args(args),
            Request::Del(keys) => del::to_args(keys),
            Request::Exists(keys) => exists::to_args(keys),
            Request::Incr(key) => incr::to_args(key),
            Request::IncrBy { key, delta } => incrby::to_args(key, *delta),
            Request::Decr(key) => decr::to_args(key),
            Request::DecrBy { key, delta } => decrby::to_args(key, *delta),
            Request::MGet(keys) => mget::to_args(keys),
            Request::MSet(pairs) => mset::to_args(pairs),
            Request::SAdd { key, members } => sadd::to_args(key, members),
            Request::SRem { key, members } => srem::to_args(key, members),
            Request::SMembers(key) => smembers::to_args(key),
            Request::SIsMember { key, member } => sismember::to_args(key, member),
            Request::SCard(key) => scard::to_args(key),
            Request::DbSize => dbsize::to_args(),
            Request::Info(section) => info::to_args(section.as_deref()),
            Request::Cluster(sub) => cluster::to_args(sub),
            Request::Quit => quit::to_args(),
        };
        Frame::Array(parts.into_iter().map(Frame::Bulk).collect())
    }

    /// The command's lower-case name, for logs and errors.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping(_) => "ping",
            Request::Echo(_) => "echo",
            Request::Get(_) => "get",
            Request::Set(_) => "set",
            Request::Del(_) => "del",
            Request::Exists(_) => "exists",
            Request::Incr(_) => "incr",
            Request::IncrBy { .. } => "incrby",
            Request::Decr(_) => "decr",
            Request::DecrBy { .. } => "decrby",
            Request::MGet(_) => "mget",
            Request::MSet(_) => "mset",
            Request::SAdd { .. } => "sadd",
            Request::SRem { .. } => "srem",
            Request::SMembers(_) => "smembers",
            Request::SIsMember { .. } => "sismember",
            Request::SCard(_) => "scard",
            Request::DbSize => "dbsize",
            Request::Info(_) => "info",
            Request::Cluster(_) => "cluster",
            Request::Quit => "quit",
        }
    }

    /// The keys the request touches, in order (with repeats), for slot routing. Empty for
    /// requests that touch no key (`CLUSTER KEYSLOT`'s argument is not routed).
    #[must_use]
    pub fn keys(&self) -> Keys<'_> {
        match self {
            Request::Get(key)
            | Request::Incr(key)
            | Request::Decr(key)
            | Request::SMembers(key)
            | Request::SCard(key)
            | Request::IncrBy { key, .. }
            | Request::DecrBy { key, .. }
            | Request::SAdd { key, .. }
            | Request::SRem { key, .. }
            | Request::SIsMember { key, .. } => Keys::One(Some(key)),
            Request::Set(args) => Keys::One(Some(&args.key)),
            Request::Del(keys) | Request::Exists(keys) | Request::MGet(keys) => {
                Keys::Many(keys.iter())
            }
            Request::MSet(pairs) => Keys::Pairs(pairs.iter()),
            Request::Ping(_)
            | Request::Echo(_)
            | Request::DbSize
            | Request::Info(_)
            | Request::Cluster(_)
            | Request::Quit => Keys::One(None),
        }
    }

    /// The one slot all the request's keys hash to, or `None` when it has no key.
    ///
    /// # Errors
    ///
    /// [`CmdError::CrossSlot`] when the keys hash to more than one slot.
    pub fn slot(&self) -> Result<Option<Slot>, CmdError> {
        let mut slot = None;
        for key in self.keys() {
            let s = key_slot(key);
            match slot {
                None => slot = Some(s),
                Some(first) if first != s => return Err(CmdError::CrossSlot),
                Some(_) => {}
            }
        }
        Ok(slot)
    }

    /// Whether the request changes data, so must go through the Raft log (SET, DEL, INCR,
    /// INCRBY, DECR, DECRBY, MSET, SADD, SREM). Reads go through ReadIndex instead.
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Set(_)
                | Request::Del(_)
                | Request::Incr(_)
                | Request::IncrBy { .. }
                | Request::Decr(_)
                | Request::DecrBy { .. }
                | Request::MSet(_)
                | Request::SAdd { .. }
                | Request::SRem { .. }
        )
    }

    /// The state-machine command a write request proposes; `None` for anything else.
    #[must_use]
    pub fn to_command(&self) -> Option<Command> {
        match self {
            Request::Set(args) => Some(Command::Set {
                key: args.key.clone(),
                value: args.value.clone(),
                condition: args.condition.clone(),
            }),
            Request::Del(keys) => Some(Command::Del { keys: keys.clone() }),
            Request::Incr(key) => Some(Command::Incr { key: key.clone() }),
            Request::IncrBy { key, delta } => Some(Command::IncrBy {
                key: key.clone(),
                delta: *delta,
            }),
            Request::Decr(key) => Some(Command::IncrBy {
                key: key.clone(),
                delta: -1,
            }),
            Request::DecrBy { key, delta } => Some(Command::IncrBy {
                key: key.clone(),
                delta: delta
                    .checked_neg()
                    .expect("the parser refuses a decrement of i64::MIN"),
            }),
            Request::MSet(pairs) => Some(Command::MSet {
                pairs: pairs.clone(),
            }),
            Request::SAdd { key, members } => Some(Command::SAdd {
                key: key.clone(),
                members: members.clone(),
            }),
            Request::SRem { key, members } => Some(Command::SRem {
                key: key.clone(),
                members: members.clone(),
            }),
            _ => None,
        }
    }

    /// The state-machine query a read request asks (GET, MGET, EXISTS, SMEMBERS, SISMEMBER,
    /// SCARD); `None` for anything else.
    #[must_use]
    pub fn to_query(&self) -> Option<Query> {
        match self {
            Request::Get(key) => Some(Query::Get(key.clone())),
            Request::MGet(keys) => Some(Query::MGet(keys.clone())),
            Request::Exists(keys) => Some(Query::Exists(keys.clone())),
            Request::SMembers(key) => Some(Query::SMembers(key.clone())),
            Request::SIsMember { key, member } => Some(Query::SIsMember {
                key: key.clone(),
                member: member.clone(),
            }),
            Request::SCard(key) => Some(Query::SCard(key.clone())),
            _ => None,
        }
    }

    /// The reply to a single-shard read from that shard's state, once the node knows the state
    /// is current (ReadIndex); `None` for a request that is not a read.
    #[must_use]
    pub fn read_reply(&self, sm: &StateMachine) -> Option<Frame> {
        self.to_query().map(|q| Frame::from(sm.read(&q)))
    }

    /// Whether the request reads a shard's data (GET, EXISTS, MGET, SMEMBERS, SISMEMBER,
    /// SCARD), so must be routed to the shard's leader and confirmed with ReadIndex.
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Get(_)
                | Request::MGet(_)
                | Request::Exists(_)
                | Request::SMembers(_)
                | Request::SIsMember { .. }
                | Request::SCard(_)
        )
    }

    /// Checks every value the request would store against `value_bytes_max`.
    ///
    /// # Errors
    ///
    /// [`CmdError::ValueTooLarge`] for the first value over the limit (the `IFEQ` comparison
    /// value counts as a value, and so does every member SADD stores).
    pub fn check_value_bytes(&self, value_bytes_max: usize) -> Result<(), CmdError> {
        let check = |v: &Bytes| {
            if v.len() > value_bytes_max {
                Err(CmdError::ValueTooLarge {
                    len: v.len(),
                    max: value_bytes_max,
                })
            } else {
                Ok(())
            }
        };
        match self {
            Request::Set(args) => {
                check(&args.value)?;
                if let SetCondition::IfEq(old) = &args.condition {
                    check(old)?;
                }
                Ok(())
            }
            Request::MSet(pairs) => pairs.iter().try_for_each(|(_, v)| check(v)),
            Request::SAdd { members, .. } => members.iter().try_for_each(check),
            _ => Ok(()),
        }
    }
}

/// The keys of a request; see [`Request::keys`].
#[derive(Clone, Debug)]
pub enum Keys<'a> {
    /// Zero or one key.
    One(Option<&'a Bytes>),
    /// A list of keys.
    Many(std::slice::Iter<'a, Bytes>),
    /// The keys of key/value pairs.
    Pairs(std::slice::Iter<'a, (Bytes, Bytes)>),
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<&'a Bytes> {
        match self {
            Keys::One(key) => key.take(),
            Keys::Many(iter) => iter.next(),
            Keys::Pairs(iter) => iter.next().map(|(k, _)| k),
        }
    }
}

fn unknown_command(name: &[u8], args: Vec<Bytes>) -> CmdError {
    // Redis: `'%.*s' ` per argument while fewer than 128 bytes have been written.
    let mut quoted = String::new();
    for arg in args {
        if quoted.len() >= UNKNOWN_ARGS_QUOTED_BYTES_MAX {
            break;
        }
        let room = UNKNOWN_ARGS_QUOTED_BYTES_MAX - quoted.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        quoted.push('\'');
        quoted.push_str(&text);
        quoted.push_str("' ");
    }
    CmdError::UnknownCommand {
        name: lossy_prefix(name),
        args: quoted,
    }
}

impl From<Outcome> for Frame {
    /// The reply a client gets for a write's or a read's outcome: `+OK`, a nil bulk string, an
    /// integer, a bulk string, an array of bulk strings and nils, or an error.
    fn from(outcome: Outcome) -> Frame {
        match outcome {
            Outcome::Ok => Frame::Simple("OK".into()),
            Outcome::Nil => Frame::Null,
            Outcome::Integer(n) => Frame::Integer(n),
            Outcome::Bulk(b) => Frame::Bulk(b),
            Outcome::Array(items) => Frame::Array(
                items
                    .into_iter()
                    .map(|v| v.map_or(Frame::Null, Frame::Bulk))
                    .collect(),
            ),
            Outcome::Error(e) => Frame::Error(e),
        }
    }
}

/// Builds an argument list from a command name and arguments (used by the `to_args` helpers).
fn args_of<'a>(name: &'static str, rest: impl IntoIterator<Item = &'a Bytes>) -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(name.as_bytes())];
    out.extend(rest.into_iter().cloned());
    out
}

#[cfg(test)]
mod tests;
