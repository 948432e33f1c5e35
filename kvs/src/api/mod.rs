//! The client API: RESP2 frames and the commands they carry (pure: parsing and encoding), and
//! `server.rs`, the connection handling that reads sockets.

pub mod cmd;
pub mod frame;
pub mod reply;

pub use cmd::{CmdError, Request};
pub use frame::{Frame, FrameError, FrameLimit, FrameLimits};
pub mod server;
