//! `INFO [section]`: a text report (per shard: role, term, leader, commit and applied index).
//! The section name is lower-cased; at most one section is accepted.

use super::{Args, CmdError, Request};
use bytes::Bytes;

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    match args.remaining() {
        0 => Ok(Request::Info(None)),
        1 => Ok(Request::Info(
            args.next_bytes()
                .map(|s| String::from_utf8_lossy(&s).to_ascii_lowercase()),
        )),
        _ => Err(CmdError::WrongArity("info")),
    }
}

pub(super) fn to_args(section: Option<&str>) -> Vec<Bytes> {
    let mut out = vec![Bytes::from_static(b"INFO")];
    out.extend(section.map(|s| Bytes::copy_from_slice(s.as_bytes())));
    out
}
