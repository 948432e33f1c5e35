//! `QUIT`: the server answers `+OK` and closes the connection. Like Redis 7, extra arguments
//! are ignored.

use super::{Args, CmdError, Request};
use crate::api::Frame;
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    let _ignored = args.rest();
    Ok(Request::Quit)
}

pub(super) fn to_args() -> Vec<Bytes> {
    vec![Bytes::from_static(b"QUIT")]
}

/// The reply sent before closing: `+OK`.
#[must_use]
pub fn reply() -> Frame {
    Frame::Simple("OK".into())
}
