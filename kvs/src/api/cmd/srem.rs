//! `SREM key member [member ...]`: removes the members from the set at `key` and answers how
//! many were members; a set left empty is removed, an absent key answers 0. A key holding a
//! string gets `-WRONGTYPE`; the rules live in the state machine.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() < 2 {
        return Err(CmdError::WrongArity("srem"));
    }
    let key = args.next_bytes().ok_or(CmdError::WrongArity("srem"))?;
    Ok(Request::SRem {
        key,
        members: args.rest(),
    })
}

pub(super) fn to_args(key: &Bytes, members: &[Bytes]) -> Vec<Bytes> {
    args_of("SREM", std::iter::once(key).chain(members))
}
