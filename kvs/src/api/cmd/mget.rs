//! `MGET key [key ...]`: answers an array with each key's value, or a null bulk string for a key
//! that is absent or holds a set (as Redis does); all keys must be in one slot. The state
//! machine answers it ([`crate::sm::Query`]).

use super::{args_of, Args, CmdError, Request};
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
