"""Checks the metric names, labels and label values that alert rules, dashboard queries and
autoscaling configs use against the gateway's catalogue (metrics.py, from `gateway describe`), and
that every alert has a unit test that fires.

`promtool` checks PromQL syntax; it cannot know that `holdline_queue_dept` or `{outcome="dead"}`
will never match anything. This scanner is deliberately simple (it looks at selectors and
by/without/on/ignoring label lists), which is enough for the queries in this repository.
"""

import re
from pathlib import Path

import yaml

import dashboard
import metrics

RULES = Path("observability/prometheus/holdline-alerts.yaml")
RULE_TESTS = Path("observability/prometheus/holdline-alerts.test.yaml")
ADAPTER_VALUES = Path("k8s/autoscaling/hpa/prometheus-adapter-values.yaml")
SEVERITIES = {"warning", "critical"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_IDENT = re.compile(r"\b[a-zA-Z_:][\w:]*\b")


def check_expr(expr: str, where: str) -> list[str]:
    """Problems with the metrics and labels one PromQL expression refers to."""
    problems = []
    bare = _STRING.sub('""', expr)
    names = [n for n in _IDENT.findall(bare) if n.startswith("holdline_") or n == "up"]
    known: set[str] = set()
    for name in names:
        labels = metrics.series_labels(name)
        if labels is None:
            problems.append(f"{where}: unknown metric {name}")
        else:
            known |= labels
    for name, body in _SELECTOR.findall(expr):
        labels = metrics.series_labels(name) or set()
        for label, op, value in _MATCHER.findall(body):
            if labels and label not in labels:
                problems.append(f"{where}: {name} has no label {label}")
            allowed = metrics.label_values(label)
            # A plain alternation (`a|b`) is checked value by value; other regexes are left alone.
            wanted = [value] if op == "=" else value.split("|") if op == "=~" and re.fullmatch(r"[\w|]+", value) else []
            for v in wanted:
                if allowed and v not in allowed:
                    problems.append(f"{where}: {label}={v!r} never occurs (values: {sorted(allowed)})")
    for group in _GROUPING.findall(bare):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if known and label not in known:
                problems.append(f"{where}: grouping by {label}, which none of the metrics has")
    return problems


def _check_rules(root: Path) -> list[str]:
    problems = []
    groups = (yaml.safe_load((root / RULES).read_text()) or {}).get("groups") or []
    alerts = set()
    for g in groups:
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record")
            where = f"{RULES}: {name}"
            problems += check_expr(r.get("expr", ""), where)
            if "alert" in r:
                alerts.add(name)
                if (r.get("labels") or {}).get("severity") not in SEVERITIES:
                    problems.append(f"{where}: labels.severity must be one of {sorted(SEVERITIES)}")
                for a in ("summary", "description"):
                    if not (r.get("annotations") or {}).get(a):
                        problems.append(f"{where}: annotations.{a} is missing")
    tests = (yaml.safe_load((root / RULE_TESTS).read_text()) or {}).get("tests") or []
    # The tests' synthetic series too: a test fed a series the gateway never exports proves nothing.
    for t in tests:
        for series in t.get("input_series") or []:
            problems += check_expr(series.get("series", ""), f"{RULE_TESTS}: {t.get('name')}")
    fired = {c["alertname"] for t in tests for c in t.get("alert_rule_test") or [] if c.get("exp_alerts")}
    for name in sorted(alerts - fired):
        problems.append(f"{RULE_TESTS}: no test case where {name} fires")
    return problems


def _check_adapter(root: Path) -> list[str]:
    problems = []
    values = yaml.safe_load((root / ADAPTER_VALUES).read_text()) or {}
    for r in (values.get("rules") or {}).get("external") or []:
        problems += check_expr(r.get("seriesQuery", ""), f"{ADAPTER_VALUES}: seriesQuery")
        served = (r.get("name") or {}).get("as")
        if metrics.series_labels(served or "") is None:
            problems.append(f"{ADAPTER_VALUES}: serves {served!r}, not a gateway metric")
    return problems


def _check_variables(root: Path) -> list[str]:
    """Dashboard variables filled by label_values(metric, label)."""
    problems = []
    for v in (dashboard.load(root).get("templating") or {}).get("list") or []:
        query = v.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", text)
        if v.get("type") != "query":
            continue
        where = f"{dashboard.DASHBOARD}: variable {v.get('name')}"
        if not m:
            problems.append(f"{where}: expected label_values(metric, label)")
            continue
        problems += check_expr(m.group(1), where)
        labels = metrics.series_labels(_IDENT.findall(m.group(1))[0]) or set()
        if m.group(2) not in labels:
            problems.append(f"{where}: {m.group(1)} has no label {m.group(2)}")
    return problems


def check(root: Path) -> list[str]:
    problems = _check_rules(root) + _check_adapter(root) + _check_variables(root)
    for where, expr in dashboard.expressions(root):
        problems += check_expr(expr, where)
    return problems
