"""Collects every gateway config file the deployment ships, so `gateway check-config` (the gateway's
own parser and validation) can check each one: the compose file's and each ConfigMap's.
"""

from pathlib import Path

from common import load_yaml_docs

COMPOSE_CONFIG = Path("compose/gateway/gateway.toml")
CONFIG_KEY = "gateway.toml"


def export(root: Path, out: Path) -> list[Path]:
    """Writes each ConfigMap-embedded gateway config to `out`; returns all config file paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [root / COMPOSE_CONFIG]
    for manifest in sorted((root / "k8s").rglob("*.yaml")):
        for doc in load_yaml_docs(manifest):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and CONFIG_KEY in (doc.get("data") or {}):
                target = out / f"{doc['metadata']['name']}.{CONFIG_KEY}"
                target.write_text(doc["data"][CONFIG_KEY])
                paths.append(target)
    return paths
