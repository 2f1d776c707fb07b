"""Checks the Grafana dashboard's structure and extracts its queries for the PromQL checks.

Grafana accepts almost any JSON and shows an empty panel for a broken query, so the checks here
are the ones that would otherwise only show up on a screen: unique panel ids, a layout inside the
24-column grid, every query on the dashboard's datasource variable, no undefined variables, and
the panels an operator needs first (mode, queue depth and lag, hold times, errors, 202s, dead
letters).
"""

import json
import re
from pathlib import Path

import yaml

DASHBOARD = Path("observability/grafana/holdline-dashboard.json")
PANEL_TYPES = {"row", "timeseries", "stat", "state-timeline", "gauge", "bargauge", "table", "text", "heatmap"}
# Grafana's built-in variables, replaced by a representative value for promtool.
BUILTIN_VARS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

# What the dashboard must show, as a pattern its queries must contain.
REQUIRED = {
    "mode per service": r"holdline_service_mode\b",
    "queue depth": r"holdline_queue_depth\b",
    "queue lag": r"holdline_queue_lag_seconds\b",
    "hold times": r"holdline_hold_duration_seconds_bucket\b",
    "error rate": r'holdline_requests_total\{[^}]*status=~"5',
    "202s": r"holdline_async_accepted_total\b",
    "dead letters": r'outcome="dead_letter"',
}


def load(root: Path) -> dict:
    return json.loads((root / DASHBOARD).read_text())


def _variables(dash: dict) -> set[str]:
    return {v["name"] for v in (dash.get("templating") or {}).get("list") or []}


def _substitute(expr: str, variables: set[str], unknown: list[str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTIN_VARS:
            return BUILTIN_VARS[name]
        if name not in variables:
            unknown.append(name)
        # Variables stand in regex matchers (service=~"$service"), where .* is valid.
        return ".*"

    return _VAR.sub(repl, expr)


def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels") or []:
        out.append(p)
        out += p.get("panels") or []
    return out


def expressions(root: Path) -> list[tuple[str, str]]:
    """(where, expr) for every query, with Grafana variables replaced by sample values."""
    dash = load(root)
    variables = _variables(dash)
    out = []
    for p in _panels(dash):
        for t in p.get("targets") or []:
            out.append((f"{DASHBOARD}: panel {p.get('id')} {t.get('refId')}", _substitute(t.get("expr", ""), variables, [])))
    return out


def as_rule_file(root: Path) -> str:
    """The dashboard's queries as recording rules, so `promtool check rules` parses each one."""
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions(root))]
    return yaml.safe_dump({"groups": [{"name": "holdline-dashboard-queries", "rules": rules}]}, sort_keys=False)


def check(root: Path) -> list[str]:
    where = str(DASHBOARD)
    try:
        dash = load(root)
    except json.JSONDecodeError as e:
        return [f"{where}: not valid JSON: {e}"]
    problems = []
    for field in ("uid", "title", "schemaVersion", "panels", "templating"):
        if field not in dash:
            problems.append(f"{where}: missing {field}")
    variables = _variables(dash)
    if "datasource" not in variables:
        problems.append(f"{where}: needs a datasource variable so it works with any Prometheus")
    ids = [p.get("id") for p in _panels(dash)]
    for dup in sorted({i for i in ids if ids.count(i) > 1}, key=str):
        problems.append(f"{where}: panel id {dup} is used twice")
    all_exprs = []
    for p in _panels(dash):
        pw = f"{where}: panel {p.get('id')} ({p.get('title')})"
        if p.get("type") not in PANEL_TYPES:
            problems.append(f"{pw}: unknown panel type {p.get('type')!r}")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"{pw}: gridPos must fit the 24-column grid")
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{pw}: has no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            problems.append(f"{pw}: duplicate refId")
        for t in targets:
            if (t.get("datasource") or p.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"{pw} {t.get('refId')}: datasource must be ${{datasource}}")
            unknown: list[str] = []
            all_exprs.append(_substitute(t.get("expr", ""), variables, unknown))
            for name in unknown:
                problems.append(f"{pw} {t.get('refId')}: undefined variable ${name}")
            if not t.get("expr"):
                problems.append(f"{pw} {t.get('refId')}: empty expr")
    joined = "\n".join(all_exprs)
    for what, pattern in REQUIRED.items():
        if not re.search(pattern, joined):
            problems.append(f"{where}: no panel shows {what} (expected a query matching {pattern})")
    return problems
