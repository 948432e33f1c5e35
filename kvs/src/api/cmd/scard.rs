//! `SCARD key`: the number of members of the set at `key`, 0 when absent; `-WRONGTYPE` when
//! the key holds a string.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes()) {
        (1, Some(key)) => Ok(Request::SCard(key)),
        _ => Err(CmdError::WrongArity("scard")),
    }
}

pub(super) fn to_args(key: &Bytes) -> Vec<Bytes> {
    args_of("SCARD", [key])
}
