//! `SMEMBERS key`: the members of the set at `key` as an array of bulk strings, in byte order
//! (Redis leaves the order unspecified; a fixed one makes replies deterministic); an empty array
//! when the key is absent, `-WRONGTYPE` when it holds a string.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes()) {
        (1, Some(key)) => Ok(Request::SMembers(key)),
        _ => Err(CmdError::WrongArity("smembers")),
    }
}

pub(super) fn to_args(key: &Bytes) -> Vec<Bytes> {
    args_of("SMEMBERS", [key])
}
