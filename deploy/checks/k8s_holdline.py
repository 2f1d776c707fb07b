"""Holdline-specific agreement inside one bundle of Kubernetes resources.

The gateway config, the service flags, the KEDA trigger and the Secret each name the same things
(service names, ports, the request stream, the Redis host and password) in their own syntax.
These checks read all of them and report every place where two disagree, plus the rules the
gateway's documentation sets for running it: probes on the admin port's /healthz and /readyz,
a termination grace period above preStop plus shutdown_grace, the gateway id from the pod name.
"""

import posixpath
from pathlib import Path
from urllib.parse import urlsplit

import yaml

import gateway
import gateway_config
import metrics
from k8s_refs import containers
from common import redis_memory_problems
from kustomize import Bundle

SCALER_TARGETS = ("lagCount", "pendingEntriesCount", "streamLength")


def request_stream(service: str) -> str:
    """A service's request stream, from the pattern `gateway describe` prints."""
    return gateway.catalogue()["redis"]["request_stream"].replace("SERVICE", service)


def consumer_group() -> str:
    """The consumer group services join, as `gateway describe` prints it."""
    return gateway.catalogue()["redis"]["consumer_group"]


def is_cluster_name(host: str) -> bool:
    """Whether a host name is a Service's cluster DNS name (`name`, `name.ns.svc[.cluster.local]`)."""
    parts = host.split(".")
    return len(parts) == 1 or parts[2:] in (["svc"], ["svc", "cluster", "local"])


def find_service(b: Bundle, host: str, namespace: str) -> dict | None:
    """The Service a cluster DNS name points at, or None."""
    parts = host.split(".")
    if is_cluster_name(host):
        ns = parts[1] if len(parts) > 1 else namespace
        for s in b.docs("Service"):
            if s["metadata"]["name"] == parts[0] and s["metadata"].get("namespace") == ns:
                return s
    return None


def _port_number(port, container: dict):
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return None


def _prestop_sleep(c: dict) -> int:
    return int((((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0))


def _check_probes(where: str, c: dict, admin_port: int | None, problems: list[str]) -> None:
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = (c.get(probe) or {}).get("httpGet") or {}
        if http.get("path") != path or _port_number(http.get("port"), c) != admin_port:
            problems.append(f"{where}: {probe} must GET {path} on the admin port {admin_port}")


def _gateway_config(b: Bundle, d: dict, c: dict, where: str, problems: list[str]):
    path = gateway_config.flag(c.get("args"), "--config")
    if path is None:
        return None
    volumes = {v["name"]: v for v in d["spec"]["template"]["spec"].get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        if posixpath.dirname(path) == m["mountPath"].rstrip("/") and "configMap" in volumes.get(m["name"], {}):
            cm = b.find("ConfigMap", volumes[m["name"]]["configMap"]["name"])
            text = ((cm or {}).get("data") or {}).get(posixpath.basename(path))
            if text is None:
                problems.append(f"{where}: --config {path} is not a key of the mounted ConfigMap")
                return None
            return gateway_config.parse(text, f"{where} ConfigMap {cm['metadata']['name']}", problems)
    problems.append(f"{where}: --config {path} is not inside a mounted ConfigMap")
    return None


def _check_gateway(b: Bundle, d: dict, c: dict, problems: list[str]) -> None:
    ns = d["metadata"]["namespace"]
    where = f"{b.name}: Deployment/{d['metadata']['name']}"
    cfg = _gateway_config(b, d, c, where, problems)
    if cfg is None:
        return
    if _port_number("http", c) != cfg.http_port:
        problems.append(f"{where}: container port 'http' is not the config's [listen] http port {cfg.http_port}")
    _check_probes(where, c, cfg.admin_port, problems)
    budget = _prestop_sleep(c) + (cfg.shutdown_grace or 0)
    grace = d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= budget:
        problems.append(f"{where}: terminationGracePeriodSeconds {grace} must exceed preStop sleep + shutdown_grace ({budget:g}s)")
    env = {e["name"]: e for e in c.get("env") or []}
    if ((env.get("HOLDLINE_GATEWAY_ID") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append(f"{where}: HOLDLINE_GATEWAY_ID must come from the pod name (fieldRef metadata.name), "
                        "which is unique among running replicas")
    if "secretKeyRef" not in ((env.get("HOLDLINE_REDIS_URL") or {}).get("valueFrom") or {}):
        problems.append(f"{where}: HOLDLINE_REDIS_URL must come from a Secret")
    for name in cfg.services:
        for host, port in cfg.endpoints(name):
            _check_endpoint(b, where, name, host, port, ns, problems)


def _check_endpoint(b: Bundle, where: str, name: str, host: str, port: int, ns: str, problems: list[str]) -> None:
    if not is_cluster_name(host):
        return
    svc = find_service(b, host, ns)
    if svc is None:
        problems.append(f"{where}: service {name} endpoint host {host} is not a Service in the bundle")
        return
    if svc["spec"].get("clusterIP") != "None":
        problems.append(f"{where}: Service {host} must be headless so the gateway sees every instance")
    sport = next((p for p in svc["spec"].get("ports") or [] if p["port"] == port), None)
    if sport is None:
        problems.append(f"{where}: Service {host} has no port {port}")
        return
    selector = svc["spec"].get("selector") or {}
    for d in b.docs("Deployment"):
        labels = d["spec"]["template"]["metadata"].get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        for c in containers(d):
            flag_service = gateway_config.flag(c.get("args"), "--service")
            if flag_service != name:
                problems.append(f"{where}: gateway service {name} is served by Deployment/{d['metadata']['name']} running --service {flag_service}")
            listen = gateway_config.flag(c.get("args"), "--listen") or ""
            if _port_number(sport.get("targetPort", port), c) != int(listen.rsplit(":", 1)[-1] or 0):
                problems.append(f"{where}: Service {host} port {port} does not reach the --listen port of Deployment/{d['metadata']['name']}")


def _check_sdk_service(b: Bundle, d: dict, c: dict, problems: list[str]) -> None:
    where = f"{b.name}: Deployment/{d['metadata']['name']}"
    admin = gateway_config.flag(c.get("args"), "--admin")
    admin_port = int(admin.rsplit(":", 1)[-1]) if admin else None
    _check_probes(where, c, admin_port, problems)
    grace = d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= _prestop_sleep(c):
        problems.append(f"{where}: terminationGracePeriodSeconds leaves no time to finish in-flight work after preStop")


def _check_scaledobject(b: Bundle, so: dict, problems: list[str]) -> None:
    where = f"{b.name}: ScaledObject/{so['metadata']['name']}"
    spec = so["spec"]
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problems.append(f"{where}: minReplicaCount is above maxReplicaCount")
    target = b.find("Deployment", spec["scaleTargetRef"]["name"])
    services = {gateway_config.flag(c.get("args"), "--service") for c in containers(target)} if target else set()
    for t in spec["triggers"]:
        if t["type"] != "redis-streams":
            continue
        md = t["metadata"]
        expected = {request_stream(s) for s in services if s}
        if md.get("stream") not in expected:
            problems.append(f"{where}: stream {md.get('stream')!r} is not the target's request stream {sorted(expected)}")
        if md.get("consumerGroup") != consumer_group():
            problems.append(f"{where}: consumerGroup must be {consumer_group()!r}, the group services join")
        modes = [k for k in SCALER_TARGETS if k in md]
        if len(modes) != 1 or not md[modes[0]].isdigit() or int(md[modes[0]]) < 1:
            problems.append(f"{where}: set exactly one of {SCALER_TARGETS} to a positive integer")
        host, _, port = md.get("address", f"{md.get('host', '')}:{md.get('port', '')}").rpartition(":")
        svc = find_service(b, host, so["metadata"]["namespace"])
        if svc is None or not any(str(p["port"]) == port for p in svc["spec"].get("ports") or []):
            problems.append(f"{where}: Redis address {host}:{port} is not a Service port in the bundle")
        auth = (t.get("authenticationRef") or {}).get("name")
        ta = b.find("TriggerAuthentication", auth) if auth else None
        if auth and ta is None:
            problems.append(f"{where}: TriggerAuthentication {auth} is not in the bundle")
        for ref in ((ta or {}).get("spec") or {}).get("secretTargetRef") or []:
            secret = b.find("Secret", ref["name"])
            if secret is None or ref["key"] not in {**(secret.get("data") or {}), **(secret.get("stringData") or {})}:
                problems.append(f"{where}: TriggerAuthentication {auth}: Secret {ref['name']} has no key {ref['key']}")


def _check_external_metrics(b: Bundle, problems: list[str]) -> None:
    for path, hpa in b.items:
        if hpa["kind"] != "HorizontalPodAutoscaler":
            continue
        external = [m["external"] for m in hpa["spec"].get("metrics") or [] if m["type"] == "External"]
        if not external:
            continue
        where = f"{b.name}: HorizontalPodAutoscaler/{hpa['metadata']['name']}"
        values = Path(path).parent / "prometheus-adapter-values.yaml"
        served = set()
        if values.is_file():
            rules = ((yaml.safe_load(values.read_text()) or {}).get("rules") or {}).get("external") or []
            served = {(r.get("name") or {}).get("as") for r in rules}
        for e in external:
            name = e["metric"]["name"]
            labels = metrics.series_labels(name)
            if labels is None:
                problems.append(f"{where}: external metric {name} is not a gateway metric")
                continue
            if name not in served:
                problems.append(f"{where}: external metric {name} is not served by {values.name}")
            for label in ((e["metric"].get("selector") or {}).get("matchLabels") or {}):
                if label not in labels:
                    problems.append(f"{where}: metric {name} has no label {label}")


def _check_redis_secret(b: Bundle, problems: list[str]) -> None:
    for s in b.docs("Secret"):
        data = s.get("stringData") or {}
        if "url" not in data:
            continue
        where = f"{b.name}: Secret/{s['metadata']['name']}"
        url = urlsplit(data["url"])
        if url.scheme not in ("redis", "rediss"):
            problems.append(f"{where}: url must be redis:// or rediss://")
        if "password" in data and url.password != data["password"]:
            problems.append(f"{where}: the password in url differs from the password key")
        host = url.hostname or ""
        if is_cluster_name(host) and find_service(b, host, s["metadata"]["namespace"]) is None:
            problems.append(f"{where}: url host {host} is not a Service in the bundle")


def check(b: Bundle) -> list[str]:
    problems: list[str] = []
    for d in b.docs("Deployment"):
        for c in containers(d):
            if gateway_config.flag(c.get("args"), "--config"):
                _check_gateway(b, d, c, problems)
            elif gateway_config.flag(c.get("args"), "--service"):
                _check_sdk_service(b, d, c, problems)
            elif str(c.get("image", "")).startswith("redis:"):
                problems += redis_memory_problems(c.get("args"), f"{b.name}: Deployment/{d['metadata']['name']}")
    for so in b.docs("ScaledObject"):
        _check_scaledobject(b, so, problems)
    _check_external_metrics(b, problems)
    _check_redis_secret(b, problems)
    return problems
