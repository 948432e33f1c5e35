//! Client commands: turning a request [`Frame`] into a typed [`Request`], and back.
//!
//! One file per command holds its parsing rules (and, for the client side, its encoding). The
//! texts of [`CmdError`] are Redis's, so that Redis clients and people recognise them. This
//! module is pure: it validates and routes, it never executes (writes are executed by the state
//! machine, [`crate::sm`], after Raft commits them).

pub mod cluster;
pub mod dbsize;
pub mod del;
pub mod echo;
pub mod exists;
pub mod get;
pub mod incr;
pub mod info;
pub mod mget;
pub mod mset;
pub mod ping;
pub mod quit;
pub mod set;

use crate::api::Frame;
use crate::shard::{key_slot, Slot};
use crate::sm::{Command, Outcome, StateMachine};
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
    /// `MGET key [key ...]` (all keys in one slot).
    MGet(Vec<Bytes>),
    /// `MSET key value [key value ...]` (all keys in one slot).
    MSet(Vec<(Bytes, Bytes)>),
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
            Request::MGet(keys) => mget::to_args(keys),
            Request::MSet(pairs) => mset::to_args(pairs),
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
            Request::MGet(_) => "mget",
            Request::MSet(_) => "mset",
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
            Request::Get(key) | Request::Incr(key) => Keys::One(Some(key)),
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
    /// MSET). Reads go through ReadIndex instead.
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Set(_) | Request::Del(_) | Request::Incr(_) | Request::MSet(_)
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
            Request::MSet(pairs) => Some(Command::MSet {
                pairs: pairs.clone(),
            }),
            _ => None,
        }
    }

    /// The reply to a single-shard read (GET, EXISTS, MGET) from that shard's state, once the
    /// node knows the state is current (ReadIndex); `None` for any other request.
    #[must_use]
    pub fn read_reply(&self, sm: &StateMachine) -> Option<Frame> {
        match self {
            Request::Get(key) => Some(get::reply(sm, key)),
            Request::Exists(keys) => Some(exists::reply(sm, keys)),
            Request::MGet(keys) => Some(mget::reply(sm, keys)),
            _ => None,
        }
    }

    /// Whether the request reads a shard's data (GET, EXISTS, MGET), so must be routed to the
    /// shard's leader and confirmed with ReadIndex.
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Get(_) | Request::Exists(_) | Request::MGet(_)
        )
    }

    /// Checks every value the request would store against `value_bytes_max`.
    ///
    /// # Errors
    ///
    /// [`CmdError::ValueTooLarge`] for the first value over the limit (the `IFEQ` comparison
    /// value counts as a value).
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
    /// The reply a client gets for a write's outcome: `+OK`, a nil bulk string, an integer or an
    /// error.
    fn from(outcome: Outcome) -> Frame {
        match outcome {
            Outcome::Ok => Frame::Simple("OK".into()),
            Outcome::Nil => Frame::Null,
            Outcome::Integer(n) => Frame::Integer(n),
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
