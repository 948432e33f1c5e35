//! What a proxied link does to its traffic: the [`LinkPolicy`] the nemesis sets on a proxy.
//!
//! Pure values, no sockets, clocks or randomness: a policy is data before it is an action (the
//! proxy in `proxy.rs` carries it out, `link.rs` decides frame by frame).

use serde::Serialize;
use std::time::Duration;

/// The longest delay or jitter a policy may ask for. A longer one is a caller's bug: it would
/// hold every byte of a link for minutes, which no fault schedule means to do.
pub const DELAY_MAX: Duration = Duration::from_secs(60);

/// What happens to a link's connections as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// Connections are accepted and carry traffic (subject to delay and frame faults).
    None,
    /// A blackhole: connections stay open but whatever is sent either way is lost, and nothing
    /// lost is delivered later. On a byte link every connection that lost data is reset at the
    /// heal (its stream cannot be resynchronised); a framed link loses whole frames and keeps the
    /// connection, unless it lost the connection's first frame (the `Hello`). What the proxy read
    /// before the drop began is in flight and still delivered (after its delay), and a frame
    /// already begun is completed, so the stream stays decodable.
    Drop,
    /// Open connections are reset and new ones refused (`ECONNREFUSED`), the port staying reserved.
    Refuse,
}

/// How a proxy treats the traffic on its link. [`LinkPolicy::pass`] is the healed state.
///
/// Rates are probabilities in `[0, 1]` drawn per frame, and only on the framed direction of a
/// `PeerFrames` link; byte links and the reverse direction ignore them. The `Hello` that opens
/// every framed connection is never lost, duplicated or reordered (only a [`Cut::Drop`] loses it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkPolicy {
    /// Whether connections are cut, and how.
    pub cut: Cut,
    /// Every chunk (byte links) or frame (framed links) is held at least this long.
    pub delay: Duration,
    /// Each chunk or frame is held a further uniform `[0, jitter]`; order is still kept.
    pub jitter: Duration,
    /// The fraction of frames lost.
    pub loss: f64,
    /// The fraction of frames sent twice in a row.
    pub duplicate: f64,
    /// The fraction of frames held back so that the next frame overtakes them.
    pub reorder: f64,
}

impl LinkPolicy {
    /// Bytes pass unchanged and at once: the healed link.
    #[must_use]
    pub fn pass() -> LinkPolicy {
        LinkPolicy {
            cut: Cut::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }

    /// A blackhole: see [`Cut::Drop`].
    #[must_use]
    pub fn drop() -> LinkPolicy {
        LinkPolicy {
            cut: Cut::Drop,
            ..LinkPolicy::pass()
        }
    }

    /// Resets open connections and refuses new ones: see [`Cut::Refuse`].
    #[must_use]
    pub fn refuse() -> LinkPolicy {
        LinkPolicy {
            cut: Cut::Refuse,
            ..LinkPolicy::pass()
        }
    }

    /// Holds every chunk or frame `delay + uniform[0, jitter]`, keeping order.
    ///
    /// # Panics
    /// If `delay` or `jitter` exceeds [`DELAY_MAX`].
    #[must_use]
    pub fn delayed(delay: Duration, jitter: Duration) -> LinkPolicy {
        LinkPolicy::pass().with_delay(delay, jitter)
    }

    /// Loses, duplicates and reorders frames at the given rates (framed links only).
    ///
    /// # Panics
    /// If a rate is not in `[0, 1]`.
    #[must_use]
    pub fn flaky(loss: f64, duplicate: f64, reorder: f64) -> LinkPolicy {
        let policy = LinkPolicy {
            loss,
            duplicate,
            reorder,
            ..LinkPolicy::pass()
        };
        policy.assert_valid();
        policy
    }

    /// This policy with the given delay and jitter (e.g. a slow and flaky link).
    ///
    /// # Panics
    /// If `delay` or `jitter` exceeds [`DELAY_MAX`].
    #[must_use]
    pub fn with_delay(self, delay: Duration, jitter: Duration) -> LinkPolicy {
        let policy = LinkPolicy {
            delay,
            jitter,
            ..self
        };
        policy.assert_valid();
        policy
    }

    /// True for the healed state: nothing cut, delayed or faulted.
    #[must_use]
    pub fn is_pass(&self) -> bool {
        *self == LinkPolicy::pass()
    }

    /// True if bytes may be held for a time (delay or jitter), so a link must buffer them.
    #[must_use]
    pub fn is_delayed(&self) -> bool {
        !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// True if any frame fault (loss, duplication, reordering) is asked for.
    #[must_use]
    pub fn has_frame_faults(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }

    /// Checks the rates and durations; a bad value is a caller's bug.
    ///
    /// # Panics
    /// If a rate is not in `[0, 1]` (NaN included) or a duration exceeds [`DELAY_MAX`].
    pub fn assert_valid(&self) {
        for (name, rate) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            assert!(
                (0.0..=1.0).contains(&rate),
                "link policy: {name} rate {rate} is not in [0, 1]"
            );
        }
        assert!(
            self.delay <= DELAY_MAX && self.jitter <= DELAY_MAX,
            "link policy: delay {:?} or jitter {:?} exceeds {DELAY_MAX:?}",
            self.delay,
            self.jitter
        );
    }
}

impl Default for LinkPolicy {
    fn default() -> LinkPolicy {
        LinkPolicy::pass()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_say_what_they_are() {
        assert!(LinkPolicy::pass().is_pass());
        assert!(LinkPolicy::default().is_pass());
        assert!(!LinkPolicy::drop().is_pass());
        assert_eq!(LinkPolicy::refuse().cut, Cut::Refuse);
        let slow = LinkPolicy::delayed(Duration::from_millis(5), Duration::ZERO);
        assert!(slow.is_delayed() && !slow.has_frame_faults() && !slow.is_pass());
        let flaky = LinkPolicy::flaky(0.0, 0.0, 0.5);
        assert!(flaky.has_frame_faults() && !flaky.is_delayed());
    }

    #[test]
    #[should_panic(expected = "loss rate")]
    fn a_rate_above_one_is_a_bug() {
        let _ = LinkPolicy::flaky(1.5, 0.0, 0.0);
    }

    #[test]
    #[should_panic(expected = "reorder rate")]
    fn a_nan_rate_is_a_bug() {
        let _ = LinkPolicy::flaky(0.0, 0.0, f64::NAN);
    }
}
