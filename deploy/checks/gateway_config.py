"""Reads a gateway config file (TOML) as deployed, for the checks that compare it with the rest.

This is not the gateway's own parser: it knows the keys the deploy configs use, rejects unknown
top-level sections (the gateway does too, with deny_unknown_fields), and extracts what the other
checks need: listener ports, shutdown grace, services with their endpoints and routes.
"""

import tomllib
from urllib.parse import urlsplit

from common import parse_duration, port_of

TOP_LEVEL = {"workers", "listen", "tls", "admin", "limits", "shutdown_grace", "log", "redis", "services", "routes"}
DEFAULT_SHUTDOWN_GRACE = 30.0


class GatewayConfig:
    """What the deploy checks need to know of one gateway config."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.http_port = port_of((raw.get("listen") or {}).get("http", ""))
        self.admin_port = port_of((raw.get("admin") or {}).get("listen", ""))
        grace = raw.get("shutdown_grace")
        self.shutdown_grace = DEFAULT_SHUTDOWN_GRACE if grace is None else parse_duration(str(grace))
        self.services: dict[str, dict] = raw.get("services") or {}
        self.routes: list[dict] = raw.get("routes") or []

    def endpoints(self, service: str) -> list[tuple[str, int]]:
        """(host, port) of each endpoint URL of a service."""
        out = []
        for url in self.services.get(service, {}).get("endpoints") or []:
            parts = urlsplit(url)
            out.append((parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)))
        return out

    def queued_services(self) -> list[str]:
        return [name for name, svc in self.services.items() if (svc.get("queue") or {}).get("enabled")]


def parse(text: str, where: str, problems: list[str]) -> GatewayConfig | None:
    """Parses and sanity-checks a config; problems are appended, None if it cannot be read."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.append(f"{where}: not valid TOML: {e}")
        return None
    unknown = set(raw) - TOP_LEVEL
    if unknown:
        problems.append(f"{where}: unknown top-level keys {sorted(unknown)}")
    cfg = GatewayConfig(raw)
    if cfg.http_port is None:
        problems.append(f"{where}: [listen] http must be host:port")
    if cfg.admin_port is None:
        problems.append(f"{where}: [admin] listen must be host:port (probes and metrics need it)")
    if cfg.shutdown_grace is None:
        problems.append(f"{where}: shutdown_grace {raw.get('shutdown_grace')!r} is not a duration")
    if cfg.queued_services() and not (raw.get("redis") or {}).get("url"):
        problems.append(f"{where}: a service enables its queue but [redis] url is missing")
    for name in cfg.services:
        if not cfg.endpoints(name):
            problems.append(f"{where}: service {name} has no endpoints")
    for r in cfg.routes:
        if r.get("service") not in cfg.services:
            problems.append(f"{where}: route {r.get('prefix')} names unknown service {r.get('service')!r}")
        if not str(r.get("prefix", "")).startswith("/"):
            problems.append(f"{where}: route prefix {r.get('prefix')!r} must start with /")
    return cfg


def flag(args: list, name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in an argument list."""
    args = [str(a) for a in args or []]
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None
