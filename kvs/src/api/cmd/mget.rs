//! `MGET key [key ...]`: answers an array with each key's value or a null bulk string; all keys must be in one slot.

use super::{args_of, Args, CmdError, Request};
use crate::api::Frame;
use crate::sm::StateMachine;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() == 0 {
        return Err(CmdError::WrongArity("mget"));
    }
    Ok(Request::MGet(args.rest()))
}

pub(super) fn to_args(keys: &[Bytes]) -> Vec<Bytes> {
    args_of("MGET", keys)
}

/// The reply from a shard's state: an array of each key's value or a null bulk string.
#[must_use]
pub fn reply(sm: &StateMachine, keys: &[Bytes]) -> Frame {
    Frame::Array(keys.iter().map(|k| super::get::reply(sm, k)).collect())
}
