//! `GET key`: the value as a bulk string, or the null bulk string when the key is absent;
//! `-WRONGTYPE` when the key holds a set. The state machine answers it ([`crate::sm::Query`]).

use super::{args_of, Args, CmdError, Request};
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
