"""Checks deploy/compose: that what the compose file builds, mounts and connects exists and agrees.

The compose-spec JSON schema (run by check.sh through check-jsonschema) says the file is well
formed; these checks say it would work: Dockerfiles and their ignore files exist, bind-mounted
files exist, the gateway config's endpoints are compose services listening on that port and
running the same service name, Redis URLs point at a compose service, the gateway's stop grace
covers its shutdown grace, and Prometheus scrapes the admin ports under the job names the alert
rules expect.
"""

from pathlib import Path
from urllib.parse import urlsplit

import yaml

import gateway_config
from common import parse_duration, port_of, redis_memory_problems, rel

COMPOSE = Path("compose/compose.yaml")
PROMETHEUS = Path("compose/prometheus.yml")
GATEWAY_JOB = "holdline-gateway"
# Where the gateway image reads its config (the Dockerfile's --config), and its directory.
CONFIG_PATH = "/etc/holdline/gateway.toml"
CONFIG_DIR = "/etc/holdline"


def _args(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return [str(a) for a in (cmd.split() if isinstance(cmd, str) else cmd)]


def _check_builds(root: Path, services: dict, problems: list[str]) -> None:
    base = (root / COMPOSE).parent
    for name, svc in services.items():
        build = svc.get("build")
        if build is None:
            continue
        context = (base / (build if isinstance(build, str) else build.get("context", "."))).resolve()
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if not (context / "Cargo.toml").is_file():
            problems.append(f"{COMPOSE}: {name}: build context {context} is not the workspace root")
        if not dockerfile.is_file():
            problems.append(f"{COMPOSE}: {name}: Dockerfile {dockerfile} does not exist")
        elif not Path(f"{dockerfile}.dockerignore").is_file():
            # Without it the whole target/ directory is sent to the builder.
            problems.append(f"{COMPOSE}: {name}: {rel(dockerfile, root)} has no .dockerignore beside it")


def _check_mounts(root: Path, services: dict, problems: list[str]) -> None:
    base = (root / COMPOSE).parent
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if source.startswith((".", "/")) and not (base / source).exists():
                problems.append(f"{COMPOSE}: {name}: bind mount source {source} does not exist")
        for dep in svc.get("depends_on") or []:
            if dep not in services:
                problems.append(f"{COMPOSE}: {name}: depends on unknown service {dep}")


def _check_redis_urls(services: dict, problems: list[str]) -> None:
    for name, svc in services.items():
        env = svc.get("environment") or {}
        urls = [gateway_config.flag(_args(svc), "--redis"), env.get("HOLDLINE_REDIS_URL") if isinstance(env, dict) else None]
        for url in filter(None, urls):
            if urlsplit(url).hostname not in services:
                problems.append(f"{COMPOSE}: {name}: Redis URL {url} is not a compose service")


def _check_gateway(root: Path, services: dict, problems: list[str]) -> dict:
    """Checks the service that mounts a gateway config; returns {service name: admin port}."""
    admin_ports = {}
    base = (root / COMPOSE).parent
    for name, svc in services.items():
        volumes = [v for v in svc.get("volumes") or [] if isinstance(v, str)]
        if any(v.split(":")[1:2] == [CONFIG_PATH] for v in volumes):
            problems.append(f"{COMPOSE}: {name}: mount the directory {CONFIG_DIR}, not the file {CONFIG_PATH}: "
                            "a single-file bind mount never sees an editor's save-by-rename, so reload misses it")
            continue
        mounts = [v for v in volumes if v.split(":")[1:2] == [CONFIG_DIR]]
        if not mounts:
            continue
        source = base / mounts[0].split(":")[0] / "gateway.toml"
        if not source.is_file():
            problems.append(f"{COMPOSE}: {name}: {rel(source, root)} (mounted at {CONFIG_DIR}) does not exist")
            continue
        cfg = gateway_config.parse(source.read_text(), rel(source, root), problems)
        if cfg is None:
            continue
        admin_ports[name] = cfg.admin_port
        stop = parse_duration(str(svc.get("stop_grace_period", "10s"))) or 0
        if stop <= (cfg.shutdown_grace or 0):
            problems.append(f"{COMPOSE}: {name}: stop_grace_period {stop:g}s must exceed shutdown_grace {cfg.shutdown_grace:g}s")
        published = {port_of(str(p)) for p in svc.get("ports") or []}
        for what, port in (("[listen] http", cfg.http_port), ("[admin] listen", cfg.admin_port)):
            if port not in published:
                problems.append(f"{COMPOSE}: {name}: {what} port {port} is not published")
        for service_name in cfg.services:
            for host, port in cfg.endpoints(service_name):
                target = services.get(host)
                if target is None:
                    problems.append(f"{rel(source, root)}: {service_name} endpoint {host} is not a compose service")
                    continue
                args = _args(target)
                if port_of(gateway_config.flag(args, "--listen") or "") != port:
                    problems.append(f"{rel(source, root)}: {service_name} endpoint {host}:{port} is not {host}'s --listen port")
                if gateway_config.flag(args, "--service") != service_name:
                    problems.append(f"{rel(source, root)}: {host} runs --service {gateway_config.flag(args, '--service')}, not {service_name}")
    if not admin_ports:
        problems.append(f"{COMPOSE}: no service mounts a gateway config directory at {CONFIG_DIR}")
    return admin_ports


def _check_prometheus(root: Path, services: dict, gateway_admin: dict, problems: list[str]) -> None:
    scrape = (yaml.safe_load((root / PROMETHEUS).read_text()) or {}).get("scrape_configs") or []
    jobs = {j.get("job_name"): j for j in scrape}
    if GATEWAY_JOB not in jobs:
        problems.append(f"{PROMETHEUS}: no job {GATEWAY_JOB!r}, which the alert rules expect")
    for job in scrape:
        for sc in job.get("static_configs") or []:
            for target in sc.get("targets") or []:
                host, port = target.rsplit(":", 1)
                svc = services.get(host)
                admin = gateway_admin.get(host) or port_of(gateway_config.flag(_args(svc or {}), "--admin") or "")
                if svc is None:
                    problems.append(f"{PROMETHEUS}: target {target} is not a compose service")
                elif admin != int(port):
                    problems.append(f"{PROMETHEUS}: target {target} is not {host}'s admin port ({admin})")


def check(root: Path) -> list[str]:
    problems: list[str] = []
    services = (yaml.safe_load((root / COMPOSE).read_text()) or {}).get("services") or {}
    _check_builds(root, services, problems)
    _check_mounts(root, services, problems)
    _check_redis_urls(services, problems)
    for name, svc in services.items():
        command = svc.get("command")
        if isinstance(command, list) and command[:1] == ["redis-server"]:
            problems += redis_memory_problems(command, f"{COMPOSE}: {name}")
    admin = _check_gateway(root, services, problems)
    _check_prometheus(root, services, admin, problems)
    return problems
