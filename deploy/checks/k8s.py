"""The Kubernetes check: every bundle under deploy/k8s resolves, validates and agrees with itself.

A bundle is what one `kubectl apply -k` applies: each overlay, and the monitoring kustomization
together with an overlay (its PodMonitors select the overlay's pods). Every file under k8s/ that
holds Kubernetes objects must be part of some bundle, so nothing escapes the checks.
"""

from pathlib import Path

import k8s_holdline
import k8s_refs
import k8s_schema
from common import is_resource, load_yaml_docs, rel
from kustomize import bundle_of

# Kustomization directories applied together, relative to deploy/k8s.
BUNDLES = [
    ["overlays/keda"],
    ["overlays/hpa"],
    ["overlays/keda", "monitoring"],
]


def check(root: Path) -> list[str]:
    problems: list[str] = []
    k8s = root / "k8s"
    bundles = [bundle_of([k8s / d for d in dirs], root, problems) for dirs in BUNDLES]
    reached = {p.resolve() for b in bundles for p, _ in b.items}
    for path in sorted(k8s.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        if any(is_resource(d) for d in load_yaml_docs(path)) and path.resolve() not in reached:
            problems.append(f"{rel(path, root)}: holds resources but no bundle in checks/k8s.py applies it")
    reached_dirs = {d for b in bundles for d in b.kustomizations}
    for kfile in sorted(k8s.rglob("kustomization.yaml")):
        if kfile.parent.resolve() not in reached_dirs:
            problems.append(f"{rel(kfile, root)}: not reached by any bundle in checks/k8s.py")
    problems += k8s_schema.check([item for b in bundles for item in b.items], root)
    # Most resources are in several bundles: report each problem once, naming every bundle it is in.
    found: dict[str, list[str]] = {}
    for b in bundles:
        for cross_check in (k8s_refs.check, k8s_holdline.check):
            try:
                lines = cross_check(b)
            except (KeyError, TypeError, AttributeError, ValueError) as e:
                # A resource too malformed to follow; the schema step has said why.
                lines = [f"{b.name}: {cross_check.__module__} stopped on a malformed resource ({e!r})"]
            for line in lines:
                found.setdefault(line.removeprefix(f"{b.name}: "), []).append(b.name)
    problems += [f"{msg} [in {'; '.join(names)}]" for msg, names in found.items()]
    return problems
