"""Schema validation of every resource under deploy/k8s.

Core kinds go through `kubernetes-validate` in strict mode (unknown fields are errors) against the
oldest Kubernetes version the manifests support and the newest the package knows. CRDs have no
bundled schema there, so KEDA's and the Prometheus Operator's kinds are validated against the
subset schemas in crd-schemas/, and a ScaledObject's HPA behavior against the real HPA schema.
An object of any other kind is reported: nothing would have checked it.
"""

import functools
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from common import key, rel

# kubernetes-validate re-reads and re-parses its (large) schema files on every call; the files never
# change within a run, and the self-test validates the same kinds dozens of times.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)

# The preStop `sleep` action the Deployments use is on by default from 1.30.
OLDEST_SUPPORTED = "1.30"

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
}


def _crd_validators(schema_dir: Path) -> dict:
    meta = json.loads((schema_dir / "_meta.json").read_text())
    registry = Registry().with_resource(meta["$id"], Resource.from_contents(meta))
    validators = {}
    for gvk, name in CRD_SCHEMAS.items():
        schema = json.loads((schema_dir / name).read_text())
        validators[gvk] = jsonschema.Draft202012Validator(schema, registry=registry)
    return validators


def _validate_core(doc: dict, where: str, problems: list[str]) -> None:
    for version in (OLDEST_SUPPORTED, kubernetes_validate.latest_version()):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: {key(doc)}: no schema for {doc['apiVersion']} {doc['kind']}")
            return
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{where}: {key(doc)}: invalid for Kubernetes {version}: {path}: {e.message}")


def _validate_keda_behavior(doc: dict, where: str, problems: list[str]) -> None:
    """KEDA passes this block to the HPA it creates, so it must be a valid HPA behavior."""
    behavior = (((doc.get("spec") or {}).get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
        "behavior"
    )
    if behavior is None:
        return
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-behavior-check"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1, "behavior": behavior},
    }
    inner: list[str] = []
    _validate_core(hpa, where, inner)
    problems.extend(p.replace("HorizontalPodAutoscaler//keda-behavior-check", key(doc) + " behavior") for p in inner)


def check(items: list[tuple[Path, dict]], root: Path) -> list[str]:
    """Validates each (file, resource) pair once."""
    problems: list[str] = []
    validators = _crd_validators(root / "checks" / "crd-schemas")
    done = set()
    for path, doc in items:
        ident = (str(path), key(doc))
        if ident in done:
            continue
        done.add(ident)
        where = rel(path, root)
        validator = validators.get((doc.get("apiVersion"), doc.get("kind")))
        if validator is not None:
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                at = ".".join(str(p) for p in err.path) or "(top)"
                problems.append(f"{where}: {key(doc)}: {at}: {err.message}")
            if doc.get("kind") == "ScaledObject":
                _validate_keda_behavior(doc, where, problems)
        else:
            _validate_core(doc, where, problems)
    return problems
