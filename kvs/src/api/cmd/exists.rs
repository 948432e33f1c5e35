//! `EXISTS key [key ...]`: answers how many of the keys exist, of any type; a key named twice
//! counts twice. The state machine answers it ([`crate::sm::Query`]).

use super::{args_of, Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() == 0 {
        return Err(CmdError::WrongArity("exists"));
    }
    Ok(Request::Exists(args.rest()))
}

pub(super) fn to_args(keys: &[Bytes]) -> Vec<Bytes> {
    args_of("EXISTS", keys)
}
