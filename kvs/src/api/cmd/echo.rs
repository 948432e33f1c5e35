//! `ECHO message`: the message back as a bulk string.

use super::{args_of, Args, CmdError, Request};
use crate::api::Frame;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match (args.remaining(), args.next_bytes()) {
        (1, Some(msg)) => Ok(Request::Echo(msg)),
        _ => Err(CmdError::WrongArity("echo")),
    }
}

pub(super) fn to_args(msg: &Bytes) -> Vec<Bytes> {
    args_of("ECHO", [msg])
}

/// The reply: the message as a bulk string.
#[must_use]
pub fn reply(msg: &Bytes) -> Frame {
    Frame::Bulk(msg.clone())
}
