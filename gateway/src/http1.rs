//! The gateway's HTTP/1.1, once for both sides: the codec its own server speaks to clients
//! (`server::h1`) and its own client speaks to upstreams (`upstream::h1`).
//!
//! - [`fields`]: header names, `Content-Length` values, writing fields;
//! - [`chunked`]: the chunked transfer coding both ways, and the trailer-field rule;
//! - [`framing`]: one [`Framing`] and one reading of a head's delimiting fields, decided for a
//!   request or for a response;
//! - [`body`]: one [`BodyReader`] and one [`BodyWriter`];
//! - [`server`]: request heads in, response heads out; [`client`]: request heads out, response
//!   heads in.
//!
//! [`fuzzing`] exposes the parsers to the fuzz targets in `fuzz/`.
//!
//! Pure code over buffers and a [`Sink`]: the connections (`server::h1`, `upstream::h1`) do the
//! I/O and the policy (timeouts, pooling, which headers a proxy adds). This module imports
//! neither of them.

pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod client;
pub(crate) mod fields;
pub(crate) mod framing;
pub mod fuzzing;
pub(crate) mod server;

pub(crate) use body::{BodyReader, BodyWriter, Sink, WriteError};
pub(crate) use chunked::Decoded;
pub(crate) use fields::{NameCache, WireError};
pub(crate) use framing::Framing;
