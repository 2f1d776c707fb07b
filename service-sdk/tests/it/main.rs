//! The SDK's integration tests, one binary: a runner started in-process on port 0, driven over
//! real sockets and, for the queue path, a real `redis-server` started per test.

mod connect_info;
mod decoding;
mod http;
mod panics;
mod queue;
mod reclaim;
mod shutdown;
mod support;
