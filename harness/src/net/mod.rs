//! The harness's network: a TCP proxy on every link, which the nemesis can break.
//!
//! - [`policy`]: what a link does to its traffic ([`LinkPolicy`], [`Cut`]); pure values.
//! - [`link`]: one direction of one proxied connection as pure data: which bytes and frames go
//!   out, when and in which order, decided by a seeded generator.
//! - [`proxy`]: the sockets: a [`Proxy`] listens on a loopback port it keeps for its whole life,
//!   can refuse on it, and runs one task per connection that carries out the policy.
//!
//! This module owns sockets only: it starts no process, reads no file, and needs no root or
//! iptables. Which links are cut and when is the nemesis's business; it only calls
//! [`Proxy::set_policy`].

pub mod link;
pub mod policy;
pub mod proxy;

pub use policy::{Cut, LinkPolicy};
pub use proxy::{Framing, Proxy, ProxyStats};
