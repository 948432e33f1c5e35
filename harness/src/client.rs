//! A workload client: turns an [`Op`] into a kvs request through [`kvs::client`] and the reply
//! into a history [`Completion`], and says which node answered.
//!
//! The verdict of each outcome follows the kvs client's rules: a definite failure is a `fail`,
//! an outcome that may have happened is an `info`, except for reads, which change nothing and so
//! are always a `fail` when they do not complete (a read that times out included). A server
//! error (a rejected command) is a `fail`. A cas whose comparison did not hold is a `fail`: it
//! changed nothing.

use crate::history::{Completion, Recorder};
use kvs::api::frame::Frame;
use kvs::client::{ClientError, ClientOptions, ClusterClient};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use workloads::{Op, ReadShape};

/// Where a client sends its reads first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadVia {
    /// To the leader of the key's shard as the client last learned it (the fast path).
    #[default]
    Leader,
    /// To the node the process is bound to (process id modulo the node count, as Jepsen binds
    /// a process to a node), which serves the read if it believes it leads and redirects
    /// otherwise: a deposed leader that still believes it leads gets asked.
    Node,
}

impl ReadVia {
    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ReadVia::Leader => "leader",
            ReadVia::Node => "node",
        }
    }
}

impl std::str::FromStr for ReadVia {
    type Err = String;

    fn from_str(s: &str) -> Result<ReadVia, String> {
        match s {
            "leader" => Ok(ReadVia::Leader),
            "node" => Ok(ReadVia::Node),
            _ => Err(format!(
                "{s:?} is not a read route; expected leader or node"
            )),
        }
    }
}

/// One logical client's connection to the cluster.
pub struct Client {
    inner: ClusterClient,
    /// Which node each client endpoint (a proxy) belongs to.
    node_of: Arc<HashMap<SocketAddr, u64>>,
    /// The endpoints in node order, for binding a process to a node.
    endpoints: Vec<SocketAddr>,
    read_via: ReadVia,
}

impl Client {
    /// A client that reaches the nodes at `endpoints` (node id, address) and sends its reads to
    /// the leaders it knows.
    #[must_use]
    pub fn new(endpoints: &[(u64, SocketAddr)], options: ClientOptions) -> Client {
        Client::with_reads(endpoints, options, ReadVia::Leader)
    }

    /// A client whose reads go first where `read_via` says.
    #[must_use]
    pub fn with_reads(
        endpoints: &[(u64, SocketAddr)],
        options: ClientOptions,
        read_via: ReadVia,
    ) -> Client {
        let node_of = Arc::new(endpoints.iter().map(|(n, a)| (*a, *n)).collect());
        let addrs: Vec<SocketAddr> = endpoints.iter().map(|(_, a)| *a).collect();
        Client {
            inner: ClusterClient::new(addrs.clone(), options),
            node_of,
            endpoints: addrs,
            read_via,
        }
    }

    /// Runs `op` for `process` and says how it ended and which node answered (or lost it).
    pub async fn invoke(&self, op: &Op, process: u64) -> (Completion, Option<u64>) {
        let (args, write) = request(op);
        let arg_refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let first = match self.read_via {
            ReadVia::Node if op.is_read() && !self.endpoints.is_empty() => {
                Some(self.endpoints[(process % self.endpoints.len() as u64) as usize])
            }
            _ => None,
        };
        let executed = self.inner.execute_via(first, &arg_refs, write).await;
        let node = executed.node.and_then(|a| self.node_of.get(&a).copied());
        let completion = match executed.result {
            Ok(frame) => completion_of(op, frame),
            Err(ClientError::Unknown(e)) if !op.is_read() => Completion::Info(e),
            Err(ClientError::Unknown(e) | ClientError::Definite(e) | ClientError::Server(e)) => {
                Completion::Fail(e)
            }
        };
        (completion, node)
    }
}

/// Runs `op` as `process` with `client` and records its invoke and completion. After an `info`
/// the process never appears again: `process` becomes a fresh id taken from `fresh_ids`.
pub async fn perform(
    rec: &Recorder,
    client: &Client,
    process: &mut u64,
    fresh_ids: &AtomicU64,
    op: &Op,
) -> Completion {
    rec.invoke(*process, op);
    let (completion, node) = client.invoke(op, *process).await;
    rec.complete(*process, op, &completion, node);
    if matches!(completion, Completion::Info(_)) {
        *process = fresh_ids.fetch_add(1, Ordering::Relaxed);
    }
    completion
}

/// The request for `op` and whether it writes.
fn request(op: &Op) -> (Vec<Vec<u8>>, bool) {
    let b = |s: &str| s.as_bytes().to_vec();
    match op {
        Op::Read { key, shape } => {
            let name = match shape {
                ReadShape::Value | ReadShape::Integer => "GET",
                ReadShape::Members => "SMEMBERS",
            };
            (vec![b(name), b(key)], false)
        }
        Op::Write { key, value } => (vec![b("SET"), b(key), b(value)], true),
        Op::Cas { key, expected, new } => {
            (vec![b("SET"), b(key), b(new), b("IFEQ"), b(expected)], true)
        }
        Op::Add { key, element } => (vec![b("SADD"), b(key), b(&element.to_string())], true),
        Op::Incr { key, delta } => (vec![b("INCRBY"), b(key), b(&delta.to_string())], true),
    }
}

/// The completion a reply means for `op`.
fn completion_of(op: &Op, frame: Frame) -> Completion {
    match (op, frame) {
        (_, Frame::Error(e)) => Completion::Fail(e),
        (Op::Read { shape, .. }, frame) => match (shape, frame) {
            (ReadShape::Value | ReadShape::Integer, Frame::Null) => Completion::Ok(Value::Null),
            (ReadShape::Value, Frame::Bulk(b)) => {
                Completion::Ok(Value::String(String::from_utf8_lossy(&b).into_owned()))
            }
            (ReadShape::Integer, Frame::Bulk(b)) => Completion::Ok(number_or_text(&b)),
            (ReadShape::Members, Frame::Array(items)) => Completion::Ok(Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        Frame::Bulk(b) => number_or_text(&b),
                        other => Value::String(format!("{other:?}")),
                    })
                    .collect(),
            )),
            (_, other) => unexpected(&other),
        },
        (Op::Write { value, .. }, Frame::Simple(s)) if s == "OK" => {
            Completion::Ok(Value::String(value.clone()))
        }
        (Op::Cas { .. }, Frame::Simple(s)) if s == "OK" => Completion::Ok(op.invoke_value()),
        (Op::Cas { .. }, Frame::Null) => {
            Completion::Fail("the value was not the one expected".into())
        }
        (Op::Add { element, .. }, Frame::Integer(_)) => Completion::Ok(Value::from(*element)),
        (Op::Incr { .. }, Frame::Integer(n)) => Completion::Ok(Value::from(n)),
        (_, other) => unexpected(&other),
    }
}

/// An integer as a JSON number, anything else as text (the checker then rejects it loudly).
fn number_or_text(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    text.parse::<i64>()
        .map_or_else(|_| Value::String(text.into_owned()), Value::from)
}

/// A reply no command of the workload should get: the command did not do what was asked, so it
/// is recorded as failed and the reply kept in the error for people to see.
fn unexpected(frame: &Frame) -> Completion {
    Completion::Fail(format!("unexpected reply {frame:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn key(k: &str) -> String {
        k.to_string()
    }

    #[test]
    fn replies_become_checker_values() {
        let read = Op::Read {
            key: key("r"),
            shape: ReadShape::Value,
        };
        assert_eq!(
            completion_of(&read, Frame::Null),
            Completion::Ok(Value::Null)
        );
        assert_eq!(
            completion_of(&read, Frame::Bulk(Bytes::from_static(b"17"))),
            Completion::Ok(Value::String("17".into()))
        );
        let members = Op::Read {
            key: key("s"),
            shape: ReadShape::Members,
        };
        assert_eq!(
            completion_of(
                &members,
                Frame::Array(vec![
                    Frame::Bulk(Bytes::from_static(b"3")),
                    Frame::Bulk(Bytes::from_static(b"10"))
                ])
            ),
            Completion::Ok(serde_json::json!([3, 10]))
        );
        let counter = Op::Read {
            key: key("c"),
            shape: ReadShape::Integer,
        };
        assert_eq!(
            completion_of(&counter, Frame::Bulk(Bytes::from_static(b"42"))),
            Completion::Ok(Value::from(42))
        );
        let cas = Op::Cas {
            key: key("r"),
            expected: "1".into(),
            new: "2".into(),
        };
        assert!(matches!(
            completion_of(&cas, Frame::Null),
            Completion::Fail(_)
        ));
        assert_eq!(
            completion_of(&cas, Frame::Simple("OK".into())),
            Completion::Ok(serde_json::json!(["1", "2"]))
        );
        let incr = Op::Incr {
            key: key("c"),
            delta: 2,
        };
        assert_eq!(
            completion_of(&incr, Frame::Integer(9)),
            Completion::Ok(Value::from(9))
        );
        assert!(matches!(
            completion_of(&incr, Frame::Error("WRONGTYPE x".into())),
            Completion::Fail(_)
        ));
        assert!(matches!(
            completion_of(&incr, Frame::Simple("OK".into())),
            Completion::Fail(e) if e.contains("unexpected")
        ));
    }

    #[test]
    fn requests_use_redis_commands() {
        let (args, write) = request(&Op::Cas {
            key: key("k"),
            expected: "1".into(),
            new: "2".into(),
        });
        assert!(write);
        assert_eq!(
            args,
            [&b"SET"[..], b"k", b"2", b"IFEQ", b"1"].map(<[u8]>::to_vec)
        );
        let (args, write) = request(&Op::Add {
            key: key("s"),
            element: 5,
        });
        assert!(write);
        assert_eq!(args, [&b"SADD"[..], b"s", b"5"].map(<[u8]>::to_vec));
        let (args, write) = request(&Op::Read {
            key: key("s"),
            shape: ReadShape::Members,
        });
        assert!(!write);
        assert_eq!(args[0], b"SMEMBERS");
    }
}
