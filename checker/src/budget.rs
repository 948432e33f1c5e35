//! Search budgets: when a search must give up and answer "unknown" instead of running on.
//!
//! The search itself never reads a clock: it asks the injected [`Deadline`] (every few thousand
//! steps) and counts its own states and cache bytes. [`InstantDeadline`] is the one place that reads
//! the system's monotonic clock; tests can inject their own [`Deadline`].

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that says when time is up.
pub trait Deadline: Send + Sync {
    /// True once the search should stop.
    fn expired(&self) -> bool;
}

/// A deadline on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct InstantDeadline {
    at: Instant,
}

impl InstantDeadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Self {
        InstantDeadline {
            at: Instant::now() + limit,
        }
    }
}

impl Deadline for InstantDeadline {
    fn expired(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// Limits for one check. States and bytes are counted per key; the deadline is shared.
#[derive(Clone)]
pub struct Budget {
    /// Stop every search once this says so.
    pub deadline: Option<Arc<dyn Deadline>>,
    /// The most (linearized set, state) pairs one key's search may remember.
    pub states_max: u64,
    /// The most bytes one key's cache of explored states may take (approximately).
    pub cache_bytes_max: u64,
}

impl Budget {
    /// No limits at all: a search runs until it has an answer.
    pub fn unlimited() -> Self {
        Budget {
            deadline: None,
            states_max: u64::MAX,
            cache_bytes_max: u64::MAX,
        }
    }

    /// Default limits (10 million states and 1 GiB of cache per key) with a deadline.
    pub fn with_deadline(deadline: Arc<dyn Deadline>) -> Self {
        Budget {
            deadline: Some(deadline),
            ..Budget::default()
        }
    }
}

impl Default for Budget {
    /// 10 million states and 1 GiB of cache per key, no deadline.
    fn default() -> Self {
        Budget {
            deadline: None,
            states_max: 10_000_000,
            cache_bytes_max: 1 << 30,
        }
    }
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("deadline", &self.deadline.is_some())
            .field("states_max", &self.states_max)
            .field("cache_bytes_max", &self.cache_bytes_max)
            .finish()
    }
}

/// Convenience: a budget with default limits that expires `limit` from now.
pub fn budget_for(limit: Duration) -> Budget {
    Budget::with_deadline(Arc::new(InstantDeadline::after(limit)))
}
