//! `DBSIZE`: the number of keys in the shards this node currently leads (a cluster-wide count
//! would need every node; Redis Cluster's DBSIZE is per node too).

use super::{Args, CmdError, Request};
use crate::api::Frame;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match args.remaining() {
        0 => Ok(Request::DbSize),
        _ => Err(CmdError::WrongArity("dbsize")),
    }
}

pub(super) fn to_args() -> Vec<Bytes> {
    vec![Bytes::from_static(b"DBSIZE")]
}

/// The reply: the number of keys as an integer.
#[must_use]
pub fn reply(key_count: usize) -> Frame {
    Frame::Integer(i64::try_from(key_count).unwrap_or(i64::MAX))
}
