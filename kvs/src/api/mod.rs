//! The client API: RESP2 frames and the commands they carry. Pure: parsing and encoding only;
//! the connection handling that reads sockets lives in the node runtime.

pub mod cmd;
pub mod frame;
pub mod reply;

pub use cmd::{CmdError, Request};
pub use frame::{Frame, FrameError, FrameLimit, FrameLimits};
