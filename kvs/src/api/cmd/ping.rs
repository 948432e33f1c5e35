//! `PING [message]`: `+PONG` without a message, else the message as a bulk string.

use super::{args_of, Args, CmdError, Request};
use crate::api::Frame;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match args.remaining() {
        0 => Ok(Request::Ping(None)),
        1 => Ok(Request::Ping(args.next_bytes())),
        _ => Err(CmdError::WrongArity("ping")),
    }
}

pub(super) fn to_args(msg: Option<&Bytes>) -> Vec<Bytes> {
    args_of("PING", msg)
}

/// The reply: `+PONG`, or the message as a bulk string.
#[must_use]
pub fn reply(msg: Option<&Bytes>) -> Frame {
    match msg {
        None => Frame::Simple("PONG".into()),
        Some(msg) => Frame::Bulk(msg.clone()),
    }
}
