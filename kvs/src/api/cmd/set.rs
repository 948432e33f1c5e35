//! `SET key value [NX | XX | IFEQ old]`: stores the value, unconditionally or only if the key is
//! absent (`NX`), present (`XX`), or currently holds exactly `old` (`IFEQ`; an absent key equals
//! no value). Answers `+OK` when set, a null bulk string when the condition failed.
//!
//! The options are matched case-insensitively; repeating the same `NX` or `XX` is allowed (as in
//! Redis), any two different conditions or a second `IFEQ` are a syntax error. Options this store
//! does not support (`GET`, `EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`) are a syntax error too.

use super::{Args, CmdError, Request, SetCondition};
use bytes::Bytes;

/// The arguments of `SET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetArgs {
    /// The key.
    pub key: Bytes,
    /// The new value.
    pub value: Bytes,
    /// When to set it.
    pub condition: SetCondition,
}

pub(super) fn parse(args: &mut Args) -> Result<Request, CmdError> {
    if args.remaining() < 2 {
        return Err(CmdError::WrongArity("set"));
    }
    let (Some(key), Some(value)) = (args.next_bytes(), args.next_bytes()) else {
        return Err(CmdError::WrongArity("set"));
    };
    let mut condition = SetCondition::Always;
    while let Some(opt) = args.next_bytes() {
        let next = if opt.eq_ignore_ascii_case(b"nx") {
            SetCondition::Nx
        } else if opt.eq_ignore_ascii_case(b"xx") {
            SetCondition::Xx
        } else if opt.eq_ignore_ascii_case(b"ifeq") {
            match args.next_bytes() {
                Some(old) => SetCondition::IfEq(old),
                None => return Err(CmdError::Syntax),
            }
        } else {
            return Err(CmdError::Syntax);
        };
        condition = match (condition, next) {
            (SetCondition::Always, next) => next,
            (SetCondition::Nx, SetCondition::Nx) => SetCondition::Nx,
            (SetCondition::Xx, SetCondition::Xx) => SetCondition::Xx,
            _ => return Err(CmdError::Syntax),
        };
    }
    Ok(Request::Set(SetArgs {
        key,
        value,
        condition,
    }))
}

pub(super) fn to_args(args: &SetArgs) -> Vec<Bytes> {
    let mut out = vec![
        Bytes::from_static(b"SET"),
        args.key.clone(),
        args.value.clone(),
    ];
    match &args.condition {
        SetCondition::Always => {}
        SetCondition::Nx => out.push(Bytes::from_static(b"NX")),
        SetCondition::Xx => out.push(Bytes::from_static(b"XX")),
        SetCondition::IfEq(old) => {
            out.push(Bytes::from_static(b"IFEQ"));
            out.push(old.clone());
        }
    }
    out
}
