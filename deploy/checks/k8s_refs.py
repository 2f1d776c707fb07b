"""Cross-references inside one bundle of Kubernetes resources.

A schema says a Service has a selector; only looking at the rest of the bundle says whether it
selects anything. These checks make sure every name a resource mentions (pods, ports, Secrets and
their keys, ConfigMaps, service accounts, autoscaler targets) resolves within what is applied
together, and that no Deployment has two autoscalers.
"""

import re

from kustomize import Bundle

CLUSTER_SCOPED = {"Namespace"}


def _selects(selector: dict, labels: dict) -> bool:
    match = (selector or {}).get("matchLabels", selector or {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def pod_labels(deploy: dict) -> dict:
    return ((deploy["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}


def containers(deploy: dict) -> list[dict]:
    return deploy["spec"]["template"]["spec"].get("containers") or []


def _port_exists(port, ctrs: list[dict]) -> bool:
    for c in ctrs:
        for p in c.get("ports") or []:
            if port in (p.get("name"), p.get("containerPort")):
                return True
    return False


def _check_namespaces(b: Bundle, problems: list[str]) -> None:
    namespaces = {d["metadata"]["name"] for d in b.docs("Namespace")}
    for d in b.docs():
        if d["kind"] in CLUSTER_SCOPED:
            continue
        ns = d["metadata"].get("namespace")
        if ns not in namespaces:
            problems.append(f"{b.name}: {d['kind']}/{d['metadata']['name']}: namespace {ns!r} is not in the bundle")


def _check_container_refs(b: Bundle, dname: str, c: dict, problems: list[str]) -> None:
    where = f"{b.name}: Deployment/{dname} container {c['name']}"
    env_names = set()
    for e in c.get("env") or []:
        env_names.add(e["name"])
        src = e.get("valueFrom") or {}
        for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = src.get(ref_key)
            if not ref:
                continue
            obj = b.find(kind, ref["name"])
            data = {} if obj is None else {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
            if obj is None:
                problems.append(f"{where}: env {e['name']}: {kind} {ref['name']} is not in the bundle")
            elif ref["key"] not in data:
                problems.append(f"{where}: env {e['name']}: {kind} {ref['name']} has no key {ref['key']}")
    # Kubernetes leaves $(NAME) as literal text when NAME is not an env var of the container.
    for arg in (c.get("command") or []) + (c.get("args") or []):
        for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
            if name not in env_names:
                problems.append(f"{where}: argument uses $({name}) but the container has no such env var")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in c:
            problems.append(f"{where}: has no {probe}")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        spec = c.get(probe) or {}
        action = spec.get("httpGet") or spec.get("tcpSocket") or spec.get("grpc")
        if action and not _port_exists(action.get("port"), [c]):
            problems.append(f"{where}: {probe} port {action.get('port')!r} is not a container port")


def _check_deployments(b: Bundle, problems: list[str]) -> None:
    for d in b.docs("Deployment"):
        name = d["metadata"]["name"]
        spec = d["spec"]
        if not _selects(spec.get("selector"), pod_labels(d)):
            problems.append(f"{b.name}: Deployment/{name}: selector does not match its pod template labels")
        pod = spec["template"]["spec"]
        sa = pod.get("serviceAccountName")
        if sa and b.find("ServiceAccount", sa) is None:
            problems.append(f"{b.name}: Deployment/{name}: ServiceAccount {sa} is not in the bundle")
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for v in volumes.values():
            for kind, field, ref in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if field in v and b.find(kind, v[field][ref]) is None:
                    problems.append(f"{b.name}: Deployment/{name}: volume {v['name']}: {kind} {v[field][ref]} is not in the bundle")
        for c in containers(d):
            _check_container_refs(b, name, c, problems)
            for m in c.get("volumeMounts") or []:
                if m["name"] not in volumes:
                    problems.append(f"{b.name}: Deployment/{name}: mount of unknown volume {m['name']}")
                elif "configMap" in volumes[m["name"]] and "subPath" in m:
                    problems.append(
                        f"{b.name}: Deployment/{name}: ConfigMap volume {m['name']} mounted with subPath never sees updates"
                    )


def _check_services(b: Bundle, problems: list[str]) -> None:
    for s in b.docs("Service"):
        name = s["metadata"]["name"]
        targets = [d for d in b.docs("Deployment") if _selects(s["spec"].get("selector"), pod_labels(d))]
        if not targets:
            problems.append(f"{b.name}: Service/{name}: selector matches no Deployment's pods")
            continue
        for p in s["spec"].get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for d in targets:
                if not _port_exists(tp, containers(d)):
                    problems.append(f"{b.name}: Service/{name}: targetPort {tp!r} is not a port of Deployment/{d['metadata']['name']}")


def _scale_targets(b: Bundle, problems: list[str]) -> None:
    owners: dict[str, list[str]] = {}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for a in b.docs(kind):
            ref = a["spec"]["scaleTargetRef"]
            target = ref.get("name")
            if ref.get("kind", "Deployment") != "Deployment" or b.find("Deployment", target) is None:
                problems.append(f"{b.name}: {kind}/{a['metadata']['name']}: target Deployment {target} is not in the bundle")
            owners.setdefault(target, []).append(f"{kind}/{a['metadata']['name']}")
    for target, autoscalers in owners.items():
        if len(autoscalers) > 1:
            problems.append(f"{b.name}: Deployment/{target} has more than one autoscaler: {', '.join(autoscalers)}")


def _check_selectors(b: Bundle, problems: list[str]) -> None:
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        for p in b.docs(kind):
            matched = [d for d in b.docs("Deployment") if _selects(p["spec"].get("selector"), pod_labels(d))]
            if not matched:
                problems.append(f"{b.name}: {kind}/{p['metadata']['name']}: selector matches no Deployment's pods")
            for ep in p["spec"].get("podMetricsEndpoints") or []:
                for d in matched:
                    if not _port_exists(ep.get("port"), containers(d)):
                        problems.append(
                            f"{b.name}: {kind}/{p['metadata']['name']}: port {ep.get('port')!r} is not a port of Deployment/{d['metadata']['name']}"
                        )


def check(b: Bundle) -> list[str]:
    problems: list[str] = []
    _check_namespaces(b, problems)
    _check_deployments(b, problems)
    _check_services(b, problems)
    _scale_targets(b, problems)
    _check_selectors(b, problems)
    return problems
