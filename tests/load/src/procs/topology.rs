//! The processes of one scenario run against one target: started in dependency order (Redis,
//! instances, then the system under test), changed by actions, and torn down at the end.

use super::child::{Managed, ProcError, ProcSpec};
use super::configs::{self, GatewayPorts, Server};
use super::free_port;
use super::watchdog::Watchdog;
use crate::scenario::{ActionKind, ActionSpec, InstanceKind, InstanceSpec, Scenario, TargetKind};
use http::Uri;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a stopped process has to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where binaries are and where the run writes its files.
#[derive(Debug, Clone)]
pub struct Env {
    /// Directory holding the `gateway` and `example-echo` binaries.
    pub bin_dir: PathBuf,
    /// The `holdline-load` binary, run as `holdline-load upstream` for upstream instances.
    pub self_exe: PathBuf,
    /// Directory for this run's configs and logs (created if missing).
    pub dir: PathBuf,
}

/// A service instance of the run.
#[derive(Debug)]
struct Instance {
    spec: InstanceSpec,
    port: u16,
    proc: Managed,
}

/// The proxy under test.
#[derive(Debug)]
struct Proxy {
    port: u16,
    admin_port: u16,
    config: PathBuf,
    proc: Managed,
}

/// Every process of one run.
#[derive(Debug)]
pub struct Topology {
    scenario: Scenario,
    kind: TargetKind,
    env: Env,
    redis: Option<(Managed, u16)>,
    instances: Vec<Instance>,
    proxy: Option<Proxy>,
    /// Declared last so that it is dropped last: the processes are stopped (or killed on drop)
    /// before it kills whatever is left in their group.
    watchdog: Watchdog,
}

// === impl Topology ===

impl Topology {
    /// Starts Redis, the instances that start with the run, and the target.
    pub async fn start(scenario: &Scenario, kind: TargetKind, env: Env) -> Result<Self, ProcError> {
        std::fs::create_dir_all(&env.dir).map_err(|e| write_err(&env.dir, e))?;
        let watchdog = Watchdog::start(&env.self_exe).map_err(|e| ProcError::Spawn {
            name: "watchdog".into(),
            program: env.self_exe.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut topo = Self {
            scenario: scenario.clone(),
            kind,
            env,
            redis: None,
            instances: Vec::new(),
            proxy: None,
            watchdog,
        };
        // Processes started so far are killed on drop if a later one fails to start.
        if scenario.redis {
            let port = free()?;
            let dir = topo.env.dir.join("redis");
            std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
            let args = [
                "--port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                "--protected-mode".into(),
                "no".into(),
                "--dir".into(),
                dir.into_os_string(),
            ];
            let mut redis = Managed::new(topo.spec("redis", "redis-server".into(), args, port));
            redis.start().await?;
            topo.redis = Some((redis, port));
        }
        for spec in &scenario.instances {
            let port = free()?;
            let instance = Instance {
                proc: Managed::new(topo.instance_spec(spec, port)),
                spec: spec.clone(),
                port,
            };
            topo.instances.push(instance);
        }
        for instance in topo.instances.iter_mut().filter(|i| i.spec.start) {
            instance.proc.start().await?;
        }
        topo.start_proxy().await?;
        Ok(topo)
    }

    /// Base URL of the system under test.
    pub fn base(&self) -> Uri {
        let port = match &self.proxy {
            Some(p) => p.port,
            None => self
                .instances
                .iter()
                .find(|i| i.spec.http && i.spec.start)
                .map_or(0, |i| i.port),
        };
        format!("http://127.0.0.1:{port}")
            .parse()
            .expect("a loopback URL with a port is a valid URI")
    }

    /// The Redis URL, when the run has Redis.
    pub fn redis_url(&self) -> Option<String> {
        self.redis
            .as_ref()
            .map(|(_, port)| format!("redis://127.0.0.1:{port}"))
    }

    /// Carries out one action.
    pub async fn apply(&mut self, action: &ActionSpec) -> Result<(), ProcError> {
        if action.on_target() {
            return self.apply_to_target(action).await;
        }
        let proc = if action.process == "redis" {
            self.redis.as_mut().map(|(p, _)| p)
        } else {
            self.instances
                .iter_mut()
                .find(|i| i.spec.name == action.process)
                .map(|i| &mut i.proc)
        };
        let proc =
            proc.ok_or_else(|| ProcError::Unsupported(format!("no process {}", action.process)))?;
        match action.kind {
            ActionKind::Start => proc.start().await,
            ActionKind::Stop => {
                proc.stop(STOP_GRACE).await;
                Ok(())
            }
            ActionKind::Kill => {
                proc.kill().await;
                Ok(())
            }
            ActionKind::Restart => {
                // Redis keeps nothing on disk, so killing it loses exactly what a crash would.
                if action.process == "redis" {
                    proc.kill().await;
                } else {
                    proc.stop(STOP_GRACE).await;
                }
                proc.start().await
            }
            ActionKind::Signal => {
                proc.signal(action.signal.as_deref().unwrap_or("TERM"))
                    .await
            }
            ActionKind::Reload => Err(ProcError::Unsupported(
                "reload applies to the target only".into(),
            )),
        }
    }

    async fn apply_to_target(&mut self, action: &ActionSpec) -> Result<(), ProcError> {
        if self.proxy.is_none() {
            return Err(ProcError::Unsupported(format!(
                "the {} target has no process to {}",
                self.kind,
                action.kind.as_str()
            )));
        }
        match action.kind {
            ActionKind::Start => {
                self.write_proxy_config()?;
                self.proxy_mut().start().await
            }
            ActionKind::Stop => {
                self.proxy_mut().stop(STOP_GRACE).await;
                Ok(())
            }
            ActionKind::Kill => {
                self.proxy_mut().kill().await;
                Ok(())
            }
            ActionKind::Restart => {
                self.proxy_mut().stop(STOP_GRACE).await;
                self.write_proxy_config()?;
                self.proxy_mut().start().await
            }
            ActionKind::Signal => {
                let sig = action.signal.as_deref().unwrap_or("HUP");
                self.proxy_mut().signal(sig).await
            }
            ActionKind::Reload => {
                self.write_proxy_config()?;
                // haproxy runs in master-worker mode, where SIGUSR2 is the reload signal.
                let sig = if self.kind == TargetKind::Haproxy {
                    "USR2"
                } else {
                    "HUP"
                };
                self.proxy_mut().signal(sig).await
            }
        }
    }

    fn proxy_mut(&mut self) -> &mut Managed {
        &mut self
            .proxy
            .as_mut()
            .expect("checked by apply_to_target")
            .proc
    }

    /// Stops everything: the target first so it stops taking requests, Redis last.
    pub async fn shutdown(&mut self) {
        if let Some(p) = &mut self.proxy {
            p.proc.stop(Duration::from_secs(3)).await;
        }
        for i in &mut self.instances {
            i.proc.stop(Duration::from_secs(3)).await;
        }
        if let Some((r, _)) = &mut self.redis {
            r.kill().await;
        }
    }

    async fn start_proxy(&mut self) -> Result<(), ProcError> {
        let (program, name) = match self.kind {
            TargetKind::Direct => return Ok(()),
            TargetKind::Gateway => (self.env.bin_dir.join("gateway"), "gateway"),
            TargetKind::Nginx => (PathBuf::from("nginx"), "nginx"),
            TargetKind::Haproxy => (PathBuf::from("haproxy"), "haproxy"),
        };
        let (port, admin_port) = (free(), free());
        let (port, admin_port) = (port?, admin_port?);
        let dir = self.env.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
        let config = dir.join(match self.kind {
            TargetKind::Gateway => "gateway.toml",
            TargetKind::Nginx => "nginx.conf",
            _ => "haproxy.cfg",
        });
        let args: Vec<OsString> = match self.kind {
            TargetKind::Gateway => vec!["--config".into(), config.clone().into()],
            TargetKind::Nginx => vec![
                "-p".into(),
                dir.clone().into(),
                "-c".into(),
                config.clone().into(),
            ],
            _ => vec!["-W".into(), "-f".into(), config.clone().into()],
        };
        let spec = self.spec(name, program, args, port);
        self.proxy = Some(Proxy {
            port,
            admin_port,
            config,
            proc: Managed::new(spec),
        });
        self.write_proxy_config()?;
        self.proxy_mut().start().await
    }

    /// Writes the target's config for the HTTP instances running now.
    fn write_proxy_config(&mut self) -> Result<(), ProcError> {
        let servers: Vec<Server> = self
            .instances
            .iter_mut()
            .filter_map(|i| (i.spec.http && i.proc.is_running()).then_some(&*i))
            .map(|i| Server {
                port: i.port,
                capacity: i.spec.capacity,
            })
            .collect();
        let redis_url = self.redis_url();
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        let text = match self.kind {
            TargetKind::Gateway => {
                let endpoints: Vec<u16> = servers.iter().map(|s| s.port).collect();
                let ports = GatewayPorts {
                    listen: ([127, 0, 0, 1], proxy.port).into(),
                    admin: ([127, 0, 0, 1], proxy.admin_port).into(),
                    redis_url: redis_url.as_deref(),
                    endpoints: &endpoints,
                    service: &self.scenario.service,
                };
                configs::gateway_config(&self.scenario.gateway, &ports)
            }
            TargetKind::Nginx => {
                let dir = proxy.config.parent().unwrap_or(Path::new("."));
                configs::nginx_config(proxy.port, &servers, dir)
            }
            TargetKind::Haproxy => configs::haproxy_config(proxy.port, &servers),
            TargetKind::Direct => return Ok(()),
        };
        std::fs::write(&proxy.config, text).map_err(|e| write_err(&proxy.config, e))
    }

    fn instance_spec(&self, spec: &InstanceSpec, port: u16) -> ProcSpec {
        let listen = format!("127.0.0.1:{port}");
        let (program, args): (PathBuf, Vec<String>) = match spec.kind {
            InstanceKind::Echo => {
                let mut args = vec![
                    "--listen".into(),
                    listen,
                    "--service".into(),
                    self.scenario.service.clone(),
                    "--concurrency".into(),
                    spec.capacity.to_string(),
                    "--work-ms".into(),
                    spec.work_ms.to_string(),
                    "--instance".into(),
                    spec.name.clone(),
                ];
                if let Some(url) = self.redis_url() {
                    args.extend(["--redis".into(), url]);
                }
                if !spec.http {
                    args.push("--no-http".into());
                }
                (self.env.bin_dir.join("example-echo"), args)
            }
            InstanceKind::Upstream => (
                self.env.self_exe.clone(),
                vec![
                    "upstream".into(),
                    "--listen".into(),
                    listen,
                    "--capacity".into(),
                    spec.capacity.to_string(),
                    "--delay-ms".into(),
                    spec.work_ms.to_string(),
                    "--echo".into(),
                    "--instance".into(),
                    spec.name.clone(),
                ],
            ),
        };
        let port = spec.http.then_some(port);
        ProcSpec {
            name: spec.name.clone(),
            program,
            args: args.into_iter().map(OsString::from).collect(),
            port,
            log: self.env.dir.join(format!("{}.log", spec.name)),
            group: Some(self.watchdog.group()),
        }
    }

    fn spec(
        &self,
        name: &str,
        program: PathBuf,
        args: impl Into<Vec<OsString>>,
        port: u16,
    ) -> ProcSpec {
        ProcSpec {
            name: name.to_owned(),
            program,
            args: args.into(),
            port: Some(port),
            log: self.env.dir.join(format!("{name}.log")),
            group: Some(self.watchdog.group()),
        }
    }
}

/// A free port not handed out before in this run: the kernel may offer a port again once the
/// probe socket is closed, and two processes of one run must never be given the same one.
fn free() -> Result<u16, ProcError> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let p = free_port().map_err(|e| ProcError::Unsupported(format!("no free port: {e}")))?;
        if !given.contains(&p) {
            // Keep the list short; only ports of recent runs can still clash.
            if given.len() > 1000 {
                given.drain(..500);
            }
            given.push(p);
            return Ok(p);
        }
    }
    Err(ProcError::Unsupported(
        "no free port after 100 tries".into(),
    ))
}

fn write_err(path: &Path, e: std::io::Error) -> ProcError {
    ProcError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}
