//! `MSET key value [key value ...]`: sets every pair atomically (one log entry) and answers
//! `+OK`; all keys must be in one slot.

use super::{Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    let n = args.remaining();
    if n == 0 || !n.is_multiple_of(2) {
        return Err(CmdError::WrongArity("mset"));
    }
    let mut pairs = Vec::with_capacity(n / 2);
    while let (Some(key), Some(value)) = (args.next_bytes(), args.next_bytes()) {
        pairs.push((key, value));
    }
    Ok(Request::MSet(pairs))
}

pub(super) fn to_args(pairs: &[(Bytes, Bytes)]) -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(b"MSET")];
    for (key, value) in pairs {
        out.push(key.clone());
        out.push(value.clone());
    }
    out
}
