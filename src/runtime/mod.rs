//! The only code that touches glommio, sockets, the clock and process limits.

pub mod limits;
