//! `SISMEMBER key member`: 1 when `member` is in the set at `key`, else 0 (also for an absent
//! key); `-WRONGTYPE` when the key holds a string.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes(), args.next_bytes()) {
        (2, Some(key), Some(member)) => Ok(Request::SIsMember { key, member }),
        _ => Err(CmdError::WrongArity("sismember")),
    }
}

pub(super) fn to_args(key: &Bytes, member: &Bytes) -> Vec<Bytes> {
    args_of("SISMEMBER", [key, member])
}
