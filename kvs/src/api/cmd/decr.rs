//! `DECR key`: subtracts one from the key's value read as a signed 64-bit decimal (an absent key
//! counts as 0) and answers the new value. It is logged as an INCRBY of -1; the arithmetic,
//! WRONGTYPE and overflow live in the state machine.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes()) {
        (1, Some(key)) => Ok(Request::Decr(key)),
        _ => Err(CmdError::WrongArity("decr")),
    }
}

pub(super) fn to_args(key: &Bytes) -> Vec<Bytes> {
    args_of("DECR", [key])
}
