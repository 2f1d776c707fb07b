//! The local processes a scenario starts and owns: a private Redis, service instances, and the
//! system under test (the gateway, nginx or haproxy), plus the timed actions on them.
//!
//! Everything binds to 127.0.0.1 on ports chosen at run time, writes its log and config into
//! the run's directory, and is killed when the run ends, whatever happened: by the tool, or by
//! the run's [`Watchdog`] when the tool itself was killed.

mod child;
mod configs;
mod topology;
mod watchdog;

pub use child::{Managed, ProcError, ProcSpec};
pub use configs::{GatewayPorts, Server, gateway_config, haproxy_config, nginx_config};
pub use topology::{Env, Topology};
pub use watchdog::{Watchdog, watch};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|a| a.port())
}
