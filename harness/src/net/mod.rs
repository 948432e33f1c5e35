//! The harness's network: TCP proxies on every link it can break.

pub mod proxy;
