//! `DECRBY key decrement`: subtracts `decrement` from the key's value read as a signed 64-bit
//! decimal (an absent key counts as 0) and answers the new value. It is logged as an INCRBY of
//! the negated decrement, so a decrement of `i64::MIN`, which has no negation, is refused here
//! with Redis's `-ERR decrement would overflow`; a decrement that is not a decimal gets
//! `-ERR value is not an integer or out of range`. Both are checked before the key is looked at,
//! as Redis does.

use super::{args_of, Args, CmdError, Request};
use crate::sm::parse_integer;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes(), args.next_bytes()) {
        (2, Some(key), Some(delta)) => {
            let delta = parse_integer(&delta).ok_or(CmdError::NotInteger)?;
            if delta == i64::MIN {
                return Err(CmdError::DecrementOverflow);
            }
            Ok(Request::DecrBy { key, delta })
        }
        _ => Err(CmdError::WrongArity("decrby")),
    }
}

pub(super) fn to_args(key: &Bytes, delta: i64) -> Vec<Bytes> {
    args_of("DECRBY", [key, &Bytes::from(delta.to_string())])
}
