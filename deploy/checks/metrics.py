"""The gateway's Prometheus metrics, as the gateway binary describes them (`gateway describe`).

Alert rules, dashboard queries and autoscaling configs are checked against this catalogue, so a
renamed metric, a misspelt label or a label value the gateway never emits fails
`deploy/check.sh` instead of silently matching nothing.
"""

import functools

import gateway

# Labels Prometheus or its Kubernetes discovery attach to every scraped series.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container"}

# Series Prometheus makes itself.
BUILTIN = {"up": set()}


@functools.cache
def _metrics() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, labels)."""
    return {m["name"]: (m["type"], set(m["labels"])) for m in gateway.catalogue()["metrics"]}


def label_values(label: str) -> set[str] | None:
    """Every value an enumerated label takes; None for an open label (service, status, ...)."""
    values = gateway.catalogue()["label_values"].get(label)
    return None if values is None else set(values)


def series_labels(name: str) -> set[str] | None:
    """Labels of a series name (histogram parts included), or None if the name is unknown."""
    metrics = _metrics()
    if name in BUILTIN:
        return BUILTIN[name] | TARGET_LABELS
    if name in metrics:
        kind, labels = metrics[name]
        return None if kind == "histogram" else labels | TARGET_LABELS
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and metrics.get(base, ("",))[0] == "histogram":
            extra = {"le"} if suffix == "_bucket" else set()
            return metrics[base][1] | TARGET_LABELS | extra
    return None
