//! `GET key`: the value as a bulk string, or the null bulk string when the key is absent.

use super::{args_of, Args, CmdError, Request};
use crate::api::Frame;
use crate::sm::StateMachine;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes()) {
        (1, Some(key)) => Ok(Request::Get(key)),
        _ => Err(CmdError::WrongArity("get")),
    }
}

pub(super) fn to_args(key: &Bytes) -> Vec<Bytes> {
    args_of("GET", [key])
}

/// The reply from a shard's state: the value, or the null bulk string.
#[must_use]
pub fn reply(sm: &StateMachine, key: &[u8]) -> Frame {
    match sm.get(key) {
        Some(value) => Frame::Bulk(value.clone()),
        None => Frame::Null,
    }
}
