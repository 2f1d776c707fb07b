"""Proves the checks still check: breaks a copy of deploy/ in known ways, one at a time, and
reports every break the checks fail to catch.

Each mutation names the file, the text to replace, the check to run and a phrase its report must
contain. A mutation whose text is no longer in the file is itself reported, so an edit to the
manifests cannot quietly turn a mutation into a no-op. With HOLDLINE_DEPLOY_BIN (the venv's bin
directory) and PROMTOOL set, as check.sh sets them, the external tools get the same treatment.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import compose
import dashboard
import k8s
import promql

CHECKS = {
    "k8s": k8s.check,
    "compose": compose.check,
    "observability": lambda root: dashboard.check(root) + promql.check(root),
}

GW = "k8s/gateway/deployment.yaml"
ECHO = "k8s/echo/deployment.yaml"
SO = "k8s/autoscaling/keda/scaledobject.yaml"
DASH = "observability/grafana/holdline-dashboard.json"
ALERTS = "observability/prometheus/holdline-alerts.yaml"

# (check, file, old text or None to create the file, new text, phrase the report must contain)
MUTATIONS = [
    ("k8s", ECHO, "port: admin\n", "port: metrics\n", "is not a container port"),
    ("k8s", ECHO, "- --service\n            - echo\n", "- --service\n            - echo2\n", "running --service echo2"),
    ("k8s", ECHO, "- name: REDIS_URL\n", "- name: REDIS\n", "uses $(REDIS_URL)"),
    ("k8s", SO, '"holdline:{echo}:requests"', '"holdline:echo:requests"', "is not the target's request stream"),
    ("k8s", SO, "consumerGroup: holdline", "consumerGroup: workers", "consumerGroup must be"),
    ("k8s", SO, "    - type: cpu\n", "    - kind: cpu\n", "'type' is a required property"),
    ("k8s", SO, "name: holdline-redis\n    - type", "name: redis-auth\n    - type", "TriggerAuthentication redis-auth is not in the bundle"),
    ("k8s", GW, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "must exceed preStop sleep"),
    ("k8s", GW, "key: url", "key: uri", "has no key uri"),
    ("k8s", GW, "fieldPath: metadata.name", "fieldPath: metadata.uid", "HOLDLINE_GATEWAY_ID must come from the pod name"),
    ("k8s", GW, "path: /readyz", "path: /healthz", "readinessProbe must GET /readyz"),
    ("k8s", GW, "mountPath: /etc/holdline\n", "mountPath: /etc/holdline\n              subPath: gateway.toml\n", "subPath never sees updates"),
    ("k8s", "k8s/gateway/configmap.yaml", 'listen = "0.0.0.0:9901"', 'listen = "0.0.0.0:9095"', "on the admin port 9095"),
    ("compose", "compose/gateway/gateway.toml", 'listen = "0.0.0.0:9901"', 'listen = "0.0.0.0:9090"', "is Prometheus's own default"),
    ("k8s", "k8s/gateway/configmap.yaml", 'service = "echo"', 'service = "ech0"', "names `ech0`, which is not a configured service"),
    ("k8s", "k8s/echo/service.yaml", "  clusterIP: None\n", "", "must be headless"),
    ("k8s", "k8s/redis/deployment.yaml", "            - --maxmemory\n            - 768mb\n", "", "Redis has no --maxmemory"),
    ("compose", "compose/compose.yaml", '"--maxmemory-policy", "noeviction"', '"--maxmemory-policy", "allkeys-lru"',
     "needs --maxmemory-policy noeviction"),
    ("k8s", "k8s/echo/pdb.yaml", "  maxUnavailable: 1\n", "  maxUnavailable: 1\n  bogus: 1\n", "'bogus' was unexpected"),
    ("k8s", "k8s/base/redis-secret.yaml", "  password: change-me", "  password: changed", "differs from the password key"),
    ("k8s", "k8s/autoscaling/hpa/hpa.yaml", "name: holdline_queue_depth", "name: holdline_queue_dept", "not a gateway metric"),
    ("k8s", "k8s/overlays/keda/kustomization.yaml", "  - ../../autoscaling/keda\n",
     "  - ../../autoscaling/keda\n  - ../../autoscaling/hpa\n", "more than one autoscaler"),
    ("k8s", "k8s/gateway/kustomization.yaml", "resources:\n", "namePrefix: x-\nresources:\n", "unsupported fields"),
    ("k8s", "k8s/gateway/extra.yaml", None, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: holdline\n",
     "no bundle in checks/k8s.py applies it"),
    ("compose", "compose/gateway/gateway.toml", "http://echo-2:8080", "http://echo-3:8080", "echo-3 is not a compose service"),
    ("compose", "compose/gateway/gateway.toml", "http://echo-2:8080", "http://echo-2:8081", "is not echo-2's --listen port"),
    ("compose", "compose/compose.yaml", "./gateway:/etc/holdline:ro", "./gateway/gateway.toml:/etc/holdline/gateway.toml:ro",
     "not the file /etc/holdline/gateway.toml"),
    ("compose", "compose/compose.yaml", "stop_grace_period: 40s", "stop_grace_period: 20s", "must exceed shutdown_grace"),
    ("compose", "compose/compose.yaml", "deploy/docker/gateway.Dockerfile", "deploy/docker/gw.Dockerfile", "does not exist"),
    ("compose", "compose/prometheus.yml", "job_name: holdline-gateway", "job_name: gateway", "no job 'holdline-gateway'"),
    ("compose", "compose/prometheus.yml", '"gateway:9901"', '"gateway:8080"', "is not gateway's admin port"),
    ("observability", ALERTS, "holdline_redis_up) == 0", "holdline_redis_upp) == 0", "unknown metric holdline_redis_upp"),
    ("observability", ALERTS, 'holdline_service_mode{mode="queue"}', 'holdline_service_mode{mod="queue"}', "has no label mod"),
    ("observability", ALERTS, "severity: warning", "severity: page", "labels.severity must be"),
    # A label value the gateway never emits (the values come from `gateway describe`).
    ("observability", ALERTS, 'outcome="dead_letter"', 'outcome="expired"', "outcome='expired' never occurs"),
    ("observability", "observability/prometheus/holdline-alerts.test.yaml", 'outcome="unclaimed"', 'outcome="expired"',
     "outcome='expired' never occurs"),
    ("observability", DASH, 'outcome=\\"dead_letter\\"}[$__range]', 'outcome=\\"dead_letters\\"}[$__range]', "never occurs"),
    ("observability", DASH, 'service=~\\"$service\\", mode=\\"recovering', 'service=~\\"$svc\\", mode=\\"recovering', "undefined variable $svc"),
    ("observability", DASH, '"id": 3,', '"id": 2,', "is used twice"),
    ("observability", DASH, "sum by (service, endpoint) (", "sum by (service, endpnt) (", "grouping by endpnt"),
    ("observability", "observability/prometheus/holdline-alerts.test.yaml", "alertname: HoldlineHoldTimeHigh",
     "alertname: HoldlineHoldTimeHigher", "no test case where HoldlineHoldTimeHigh fires"),
]


def _apply(copy: Path, path: str, old: str | None, new: str) -> str | None:
    target = copy / path
    if old is None:
        target.write_text(new)
        return None
    text = target.read_text()
    if old not in text:
        return f"mutation of {path} is stale: {old!r} is not in the file"
    target.write_text(text.replace(old, new))
    return None


def _rejects(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode != 0


def _tool_cases(root: Path, bin_dir: Path, scratch: Path) -> list[str]:
    """yamllint, hadolint and the compose-spec schema must each reject a broken file."""
    problems = []
    copy = scratch / "tools"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cases = [
        ("k8s/echo/pdb.yaml", "  maxUnavailable: 1\n", "  maxUnavailable: 1\n  maxUnavailable: 2\n",
         [str(bin_dir / "yamllint"), "--strict", "-c", str(copy / "yamllint.yaml"), str(copy / "k8s/echo/pdb.yaml")],
         "yamllint accepted a duplicated key"),
        ("docker/gateway.Dockerfile", "USER 65532:65532\n", "USER root\n",
         [str(bin_dir / "hadolint"), "--config", str(copy / "docker/hadolint.yaml"), str(copy / "docker/gateway.Dockerfile")],
         "hadolint accepted an image that runs as root"),
        ("compose/compose.yaml", "    restart: unless-stopped\n", "    restart: unless-stopped\n    restrat: always\n",
         [str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(copy / "compose/compose.yaml")],
         "the compose-spec schema accepted an unknown service key"),
    ]
    for path, old, new, cmd, failure in cases:
        stale = _apply(copy, path, old, new)
        if stale or not _rejects(cmd):
            problems.append(stale or failure)
    return problems


def _promtool_cases(root: Path, promtool: str, scratch: Path) -> list[str]:
    """promtool must reject a broken dashboard query and a loosened alert threshold."""
    problems = []
    copy = scratch / "promtool"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    stale = _apply(copy, DASH, "* 2 +", "* * 2 +")
    rules = scratch / "dashboard-rules.yaml"
    rules.write_text(dashboard.as_rule_file(copy))
    if stale or not _rejects([promtool, "check", "rules", str(rules)]):
        problems.append(stale or "promtool accepted a dashboard query with a syntax error")
    stale = _apply(copy, ALERTS, "> 10000", "> 100000")
    tests = copy / "observability/prometheus/holdline-alerts.test.yaml"
    if stale or not _rejects([promtool, "test", "rules", str(tests)]):
        problems.append(stale or "the alert unit tests passed with HoldlineQueueBacklogHigh's threshold raised tenfold")
    return problems


def check(root: Path) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="holdline-deploy-selftest-") as tmp:
        scratch = Path(tmp)
        # One copy, each mutation undone after its check: copying deploy/ per mutation is most of
        # the time otherwise.
        copy = scratch / "deploy"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for name, path, old, new, expected in MUTATIONS:
            target = copy / path
            original = target.read_text() if target.exists() else None
            stale = _apply(copy, path, old, new)
            found = [] if stale else CHECKS[name](copy)
            if original is None:
                target.unlink()
            else:
                target.write_text(original)
            if stale:
                problems.append(stale)
            elif not any(expected in p for p in found):
                problems.append(f"{name} check missed a break in {path} (expected {expected!r}); it reported: {found}")
        tools = []
        if os.environ.get("HOLDLINE_DEPLOY_BIN"):
            problems += _tool_cases(root, Path(os.environ["HOLDLINE_DEPLOY_BIN"]), scratch)
            tools.append("yamllint, hadolint, compose schema")
        if os.environ.get("PROMTOOL"):
            problems += _promtool_cases(root, os.environ["PROMTOOL"], scratch)
            tools.append("promtool")
    if not problems:
        print(f"  {len(MUTATIONS)} mutations caught" + (f"; {', '.join(tools)} reject broken input" if tools else ""))
    return problems
