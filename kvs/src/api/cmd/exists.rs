//! `EXISTS key [key ...]`: answers how many of the keys exist; a key named twice counts twice.

use super::{args_of, Args, CmdError, Request};
use crate::api::Frame;
use crate::sm::StateMachine;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() == 0 {
        return Err(CmdError::WrongArity("exists"));
    }
    Ok(Request::Exists(args.rest()))
}

pub(super) fn to_args(keys: &[Bytes]) -> Vec<Bytes> {
    args_of("EXISTS", keys)
}

/// The reply from a shard's state: how many of `keys` exist, repeats counted.
#[must_use]
pub fn reply(sm: &StateMachine, keys: &[Bytes]) -> Frame {
    Frame::Integer(keys.iter().filter(|k| sm.exists(k)).count() as i64)
}
