//! `SADD key member [member ...]`: adds the members to the set at `key` (creating it when
//! absent) and answers how many were not members before. A key holding a string gets
//! `-WRONGTYPE`; the rules live in the state machine.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() < 2 {
        return Err(CmdError::WrongArity("sadd"));
    }
    let key = args.next_bytes().ok_or(CmdError::WrongArity("sadd"))?;
    Ok(Request::SAdd {
        key,
        members: args.rest(),
    })
}

pub(super) fn to_args(key: &Bytes, members: &[Bytes]) -> Vec<Bytes> {
    args_of("SADD", std::iter::once(key).chain(members))
}
