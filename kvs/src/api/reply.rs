//! The error replies of routing and replication, with the texts clients act on: Redis Cluster
//! clients read the first word (`MOVED`, `TRYAGAIN`, `CROSSSLOT`) and redirect or retry.

use crate::api::Frame;
use crate::shard::Slot;
use std::net::SocketAddr;

/// `-MOVED <slot> <host:port>`: the slot's shard is led by the node at `addr`; the client should
/// resend there and refresh its slot map.
#[must_use]
pub fn moved(slot: Slot, addr: SocketAddr) -> Frame {
    Frame::Error(format!("MOVED {} {addr}", slot.0))
}

/// `-TRYAGAIN ...`: the slot's shard has no known leader yet (an election is under way); the
/// request did not take effect and may be retried after a pause.
#[must_use]
pub fn try_again() -> Frame {
    Frame::Error("TRYAGAIN shard has no leader yet, retry later".into())
}

/// `-TRYAGAIN ...`: this node follows a leader it has not heard from lately (it may be dead or
/// cut off), so it does not send the client there; the request did not take effect and may be
/// retried after a pause, by when an election may have named a leader that answers.
#[must_use]
pub fn leader_silent() -> Frame {
    Frame::Error("TRYAGAIN shard's leader has not been heard from lately, retry later".into())
}

/// The error prefix of a write whose outcome is unknown: proposed, but leadership was lost (or
/// the node is shutting down) before it could be confirmed. It may or may not have taken effect;
/// a client must not treat it as a definite failure.
pub const OUTCOME_UNKNOWN_PREFIX: &str = "ERR outcome unknown";

/// `-ERR outcome unknown: <reason>`; see [`OUTCOME_UNKNOWN_PREFIX`].
#[must_use]
pub fn outcome_unknown(reason: &str) -> Frame {
    Frame::Error(format!("{OUTCOME_UNKNOWN_PREFIX}: {reason}"))
}

/// `-ERR max number of pending requests per connection reached (<max>)`: sent before closing a
/// connection that exceeds [`crate::config::Limits::pending_requests_max`], if the server
/// chooses to answer rather than stop reading.
#[must_use]
pub fn too_many_pending(max: usize) -> Frame {
    Frame::Error(format!(
        "ERR max number of pending requests per connection reached ({max})"
    ))
}

/// `-ERR max number of clients reached`: Redis's text for a connection over
/// [`crate::config::Limits::connections_max`]; the server closes it after this reply.
#[must_use]
pub fn too_many_connections() -> Frame {
    Frame::Error("ERR max number of clients reached".into())
}

/// Whether an error reply says the outcome of a write is unknown (for the client library).
#[must_use]
pub fn is_outcome_unknown(error_text: &str) -> bool {
    error_text.starts_with(OUTCOME_UNKNOWN_PREFIX)
}

/// What an error reply asks a client to do, by its first word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `MOVED <slot> <host:port>`: resend to `addr` and refresh the slot map. Definitely not
    /// executed.
    Moved {
        /// The key's slot.
        slot: Slot,
        /// Where the slot's leader is, as `host:port`.
        addr: String,
    },
    /// `TRYAGAIN ...`: not executed; retry after a pause.
    TryAgain,
    /// `CROSSSLOT ...`: not executed; the request itself is wrong.
    CrossSlot,
    /// `ERR outcome unknown...`: a write that may or may not have taken effect.
    OutcomeUnknown,
    /// Any other error: the command was rejected, definitely not executed.
    Other,
}

/// Classifies an error reply's text (without the leading `-`).
#[must_use]
pub fn classify(error_text: &str) -> ErrorKind {
    let mut words = error_text.split(' ');
    match words.next() {
        Some("MOVED") => {
            let slot = words.next().and_then(|s| s.parse::<u16>().ok());
            let addr = words.next();
            match (slot, addr) {
                (Some(slot), Some(addr)) if !addr.is_empty() => ErrorKind::Moved {
                    slot: Slot(slot),
                    addr: addr.to_string(),
                },
                _ => ErrorKind::Other,
            }
        }
        Some("TRYAGAIN") => ErrorKind::TryAgain,
        Some("CROSSSLOT") => ErrorKind::CrossSlot,
        _ if is_outcome_unknown(error_text) => ErrorKind::OutcomeUnknown,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_exact() {
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert_eq!(
            moved(Slot(3999), addr).to_bytes(),
            &b"-MOVED 3999 127.0.0.1:7001\r\n"[..]
        );
        assert_eq!(
            try_again().to_bytes(),
            &b"-TRYAGAIN shard has no leader yet, retry later\r\n"[..]
        );
        assert_eq!(
            leader_silent().to_bytes(),
            &b"-TRYAGAIN shard's leader has not been heard from lately, retry later\r\n"[..]
        );
        assert_eq!(
            classify("TRYAGAIN shard's leader has not been heard from lately, retry later"),
            ErrorKind::TryAgain
        );
        let unknown = outcome_unknown("leadership lost");
        assert_eq!(
            unknown,
            Frame::Error("ERR outcome unknown: leadership lost".into())
        );
        assert!(is_outcome_unknown("ERR outcome unknown: leadership lost"));
        assert!(!is_outcome_unknown("ERR syntax error"));
        assert_eq!(
            too_many_pending(8),
            Frame::Error("ERR max number of pending requests per connection reached (8)".into())
        );
        assert_eq!(
            classify("MOVED 3999 127.0.0.1:7001"),
            ErrorKind::Moved {
                slot: Slot(3999),
                addr: "127.0.0.1:7001".into()
            }
        );
        assert_eq!(classify("MOVED x 127.0.0.1:7001"), ErrorKind::Other);
        assert_eq!(classify("MOVED 1"), ErrorKind::Other);
        assert_eq!(
            classify("TRYAGAIN shard has no leader yet, retry later"),
            ErrorKind::TryAgain
        );
        assert_eq!(
            classify("CROSSSLOT Keys in request don't hash to the same slot"),
            ErrorKind::CrossSlot
        );
        assert_eq!(
            classify("ERR outcome unknown: leadership lost"),
            ErrorKind::OutcomeUnknown
        );
        assert_eq!(classify("ERR syntax error"), ErrorKind::Other);
        assert_eq!(
            too_many_connections(),
            Frame::Error("ERR max number of clients reached".into())
        );
    }
}
