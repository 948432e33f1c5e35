//! `INCRBY key increment`: adds `increment` to the key's value read as a signed 64-bit decimal
//! (an absent key counts as 0) and answers the new value. The increment must itself be such a
//! decimal (`-ERR value is not an integer or out of range` otherwise, checked here, before the
//! key is looked at, as Redis does); the arithmetic, WRONGTYPE and overflow live in the state
//! machine.

use super::{args_of, Args, CmdError, Request};
use crate::sm::parse_integer;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes(), args.next_bytes()) {
        (2, Some(key), Some(delta)) => {
            let delta = parse_integer(&delta).ok_or(CmdError::NotInteger)?;
            Ok(Request::IncrBy { key, delta })
        }
        _ => Err(CmdError::WrongArity("incrby")),
    }
}

pub(super) fn to_args(key: &Bytes, delta: i64) -> Vec<Bytes> {
    args_of("INCRBY", [key, &Bytes::from(delta.to_string())])
}
