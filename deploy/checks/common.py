"""Helpers shared by the deploy checks: YAML loading, resource identity, durations.

Every check is a function `check(root) -> list[str]` that returns its problems, one line each,
naming the file and what is wrong, so `run.py` can print them and `selftest.py` can assert on them.
"""

import re
from pathlib import Path

import yaml


# libyaml's loader when PyYAML was built with it: the pure-Python one is most of a run's time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_docs(path: Path) -> list[dict]:
    """All non-empty documents of a YAML file."""
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=_LOADER) if d is not None]


def rel(path: Path, root: Path) -> str:
    """A path as shown in problem lines: relative to deploy/."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def is_resource(doc) -> bool:
    """Whether a YAML document is a Kubernetes object (rather than, say, Helm values)."""
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def key(doc: dict) -> str:
    """kind/namespace/name, the identity kustomize uses to spot duplicates."""
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float | None:
    """Seconds in a humantime duration such as `30s`, `1m 30s` or `500ms`; None if unparsable."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)\b", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)\b|\s", "", text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def redis_memory_problems(args: list, where: str) -> list[str]:
    """A Redis that holds queued calls needs a maxmemory with the noeviction policy: without a
    bound a flood ends in an OOM kill that loses the queue, and an evicting policy drops calls."""
    args = [str(a) for a in args or []]
    problems = []
    if "--maxmemory" not in args:
        problems.append(f"{where}: Redis has no --maxmemory, so a flood ends in an OOM kill that loses the queue")
    policy = args[args.index("--maxmemory-policy") + 1] if "--maxmemory-policy" in args[:-1] else None
    if policy != "noeviction":
        problems.append(f"{where}: Redis needs --maxmemory-policy noeviction (an evicted entry is a dropped call)")
    return problems


def port_of(addr: str) -> int | None:
    """The port of `host:port` or `[v6]:port`; None if there is none."""
    m = re.fullmatch(r".*:(\d+)", addr or "")
    return int(m.group(1)) if m else None
