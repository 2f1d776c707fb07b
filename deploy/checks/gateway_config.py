"""A deployed gateway config as the gateway itself reads it, for the checks that compare it with
the rest of the deployment (ports, shutdown grace, services, endpoints, routes).

The text goes through `gateway describe --json --config`, so it is parsed and validated by the
gateway's own code with every default filled in; nothing here re-parses TOML or knows a default.
"""

from common import parse_duration, port_of
from gateway import GatewayError
import gateway


# Prometheus's default listen port: an admin port there collides with the Prometheus that scrapes it.
PROMETHEUS_PORT = 9090


class GatewayConfig:
    """What the deploy checks need to know of one gateway config."""

    def __init__(self, parsed: dict):
        self.parsed = parsed
        self.http_port = port_of(parsed["listen"].get("http") or "")
        self.admin_port = port_of(parsed["admin"].get("listen") or "")
        self.shutdown_grace = parse_duration(parsed["shutdown_grace"])
        self.services: dict[str, dict] = parsed["services"]
        self.routes: list[dict] = parsed["routes"]

    def endpoints(self, service: str) -> list[tuple[str, int]]:
        """(host, port) of each endpoint of a service."""
        return [(e["host"], e["port"]) for e in self.services.get(service, {}).get("endpoints") or []]

    def queued_services(self) -> list[str]:
        return [name for name, svc in self.services.items() if svc["queue"]["enabled"]]


def parse(text: str, where: str, problems: list[str]) -> GatewayConfig | None:
    """The config as the gateway parses it; its refusal is appended to problems (then None)."""
    try:
        cfg = GatewayConfig(gateway.config(text))
    except GatewayError as e:
        problems.append(f"{where}: {e}")
        return None
    if cfg.http_port is None:
        problems.append(f"{where}: [listen] http must be set (the deployment routes to it)")
    if cfg.admin_port is None:
        problems.append(f"{where}: [admin] listen must not be off (probes and metrics need it)")
    elif cfg.admin_port == PROMETHEUS_PORT:
        problems.append(f"{where}: [admin] listen port {PROMETHEUS_PORT} is Prometheus's own default, "
                        "which a Prometheus beside the gateway would take (the gateway's default is 9901)")
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
