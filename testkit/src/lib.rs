//! Test support shared by the workspace's test suites: a real `redis-server` started on a free
//! port and stopped when dropped (tests never share the machine's Redis on 6379), child
//! processes, free ports, a one-request HTTP client ([`client`]) and a bounded wait for a
//! condition ([`wait`]).

pub mod client;
pub mod wait;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private `redis-server` process; killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// If `redis-server` is not on `PATH` or does not come up within ten seconds.
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("holdline-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create redis dir");
            let mut server = Self {
                child: None,
                port,
                dir,
            };
            // Another process may take the port between `free_port` and the server's bind; the
            // server then exits and a new port is tried.
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server could not bind a free port in five tries");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL); it keeps nothing on disk, so its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port after [`stop`](Self::stop).
    ///
    /// # Panics
    /// If the port has been taken in the meantime.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "port {} was taken meanwhile", self.port);
    }

    /// Starts the process and waits until it answers; `false` when it exited instead (its port
    /// was taken). Readiness is judged by asking the server for its process id, so that another
    /// server on the same port is never mistaken for this one.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (apt-get install redis-server)");
        let pid = child.id();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            if server_pid(self.port) == Some(pid) {
                return true;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not answer within ten seconds",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `process_id` a Redis server on `port` reports, if one answers.
fn server_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    // The reply is one bulk string; `process_id` sits in its first few hundred bytes.
    while !String::from_utf8_lossy(&reply).contains("run_id:") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The path of a binary of this workspace, built (in the debug profile) on first use in this
/// process so that a test never runs a stale one. Under `cargo test --workspace` the binary was
/// built already, with that command's features; `cargo build -p` would build it again with
/// others (cargo unifies features over the packages it is asked for), so `scripts/test.sh` sets
/// `HOLDLINE_TEST_BINS_BUILT=1` and the binary is used as it is.
///
/// # Panics
/// If the build fails.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace root")
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let prebuilt = std::env::var_os("HOLDLINE_TEST_BINS_BUILT").is_some();
    if !prebuilt && !built.iter().any(|b| b == bin) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&workspace)
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {bin} failed"
        );
        built.push(bin.to_owned());
    }
    target.join("debug").join(bin)
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
pub struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    /// Spawns `command`, naming it `name` in messages.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns whether it exited 0.
    ///
    /// # Panics
    /// If it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                panic!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Never returns the same port twice in one process, so two tests running in parallel cannot be
/// handed one port.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Blocks until something accepts TCP connections on `127.0.0.1:port`.
///
/// # Panics
/// If nothing does within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listens on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn ping(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn starts_answers_restarts_and_stops() {
        let mut redis = RedisServer::start();
        assert_eq!(ping(redis.port()), "+PONG\r\n");
        redis.stop();
        assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
        redis.restart();
        assert_eq!(ping(redis.port()), "+PONG\r\n");
    }
}
