"""The gateway's Prometheus metrics: names, types and labels, as the gateway exports them.

Alert rules, dashboard queries and autoscaling configs are checked against this list, so a
renamed metric or a misspelt label fails `deploy/check.sh` instead of silently matching nothing.
Keep it in step with the gateway's metrics module.
"""

# name -> (type, labels)
GATEWAY = {
    "holdline_requests_total": ("counter", {"route", "service", "status", "path"}),
    "holdline_request_duration_seconds": ("histogram", {"service", "path"}),
    "holdline_service_mode": ("gauge", {"service", "mode"}),
    "holdline_mode_switches_total": ("counter", {"service", "from", "to"}),
    "holdline_queue_depth": ("gauge", {"service"}),
    "holdline_queue_lag_seconds": ("gauge", {"service"}),
    "holdline_hold_duration_seconds": ("histogram", {"service"}),
    "holdline_queue_replies_total": ("counter", {"service", "outcome"}),
    "holdline_async_accepted_total": ("counter", {"service"}),
    "holdline_endpoint_inflight": ("gauge", {"service", "endpoint"}),
    "holdline_endpoint_healthy": ("gauge", {"service", "endpoint"}),
    "holdline_endpoint_ejected": ("gauge", {"service", "endpoint"}),
    "holdline_redis_up": ("gauge", set()),
    "holdline_parked_calls": ("gauge", set()),
}

# Label values the gateway emits, for checking matchers with a literal value.
LABEL_VALUES = {
    "path": {"sync", "queue", "async"},
    "mode": {"sync", "queue", "recovering"},
    "outcome": {"delivered", "async", "expired", "dead_letter"},
}

# Labels Prometheus or its Kubernetes discovery attach to every scraped series.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container"}

# Series Prometheus makes itself.
BUILTIN = {"up": set()}


def series_labels(name: str) -> set[str] | None:
    """Labels of a series name (histogram parts included), or None if the name is unknown."""
    if name in BUILTIN:
        return BUILTIN[name] | TARGET_LABELS
    if name in GATEWAY:
        kind, labels = GATEWAY[name]
        return None if kind == "histogram" else labels | TARGET_LABELS
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and GATEWAY.get(base, ("",))[0] == "histogram":
            extra = {"le"} if suffix == "_bucket" else set()
            return GATEWAY[base][1] | TARGET_LABELS | extra
    return None
