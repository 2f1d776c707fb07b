//! The echo service: answers every request with a JSON description of it, over HTTP and from the
//! Holdline queue. The load tool and the benchmarks drive it.
//!
//! Run with: `cargo run -p example-echo -- --service echo --redis redis://127.0.0.1:6379`
//! (HTTP on 127.0.0.1:18080 plus the `echo` queue; `--help` lists every flag and its environment
//! variable). Stops gracefully on SIGTERM or Ctrl-C.

use clap::Parser;

// A faster allocator than glibc's for the many small allocations per request (Redis replies,
// headers, JSON); any service built on the SDK can do the same.
#[global_allocator]
static ALLOCATOR: holdline_alloc::MiMalloc = holdline_alloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    holdline_sdk::init_logging();
    let args = example_echo::Args::parse();
    example_echo::run(args, holdline_sdk::shutdown_signal()).await
}
