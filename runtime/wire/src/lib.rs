//! The PostgreSQL wire protocol as the proxy needs it: framing that keeps
//! frames as raw bytes, decoding of the few messages policy needs, and the
//! backend messages the proxy itself originates.
//!
//! Frames are forwarded byte-for-byte unless rewritten, so only the
//! messages below are ever decoded. The encoders are hand-written because
//! the crates that have them (pgwire) decode strings lossily and would make
//! us re-encode what we only need to forward; each message is a few lines.

pub mod errors;
pub mod frame;
pub mod kinds;
pub mod messages;
