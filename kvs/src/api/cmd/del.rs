//! `DEL key [key ...]`: removes the keys and answers how many existed.

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() == 0 {
        return Err(CmdError::WrongArity("del"));
    }
    Ok(Request::Del(args.rest()))
}

pub(super) fn to_args(keys: &[Bytes]) -> Vec<Bytes> {
    args_of("DEL", keys)
}
