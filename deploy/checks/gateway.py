"""What the gateway binary says about itself: `gateway describe --json [--config FILE]`.

The metric catalogue (names, types, labels and the values of enumerated labels) and the parsed
form of a config (defaults filled in, validated by the gateway's own code) come from the binary,
so the checks compare the deployment with the gateway rather than with a copy that can drift.
The binary is HOLDLINE_GATEWAY_BIN, which `deploy/check.sh` sets (building it when unset).
"""

import functools
import json
import os
import subprocess
import tempfile


class GatewayError(Exception):
    """The gateway binary is missing or refused its input; the message says why."""


def _binary() -> str:
    path = os.environ.get("HOLDLINE_GATEWAY_BIN")
    if not path:
        raise GatewayError("HOLDLINE_GATEWAY_BIN is not set (deploy/check.sh sets it to the gateway binary)")
    if not os.access(path, os.X_OK):
        raise GatewayError(f"HOLDLINE_GATEWAY_BIN={path} is not an executable")
    return path


@functools.cache
def _describe(config_text: str | None) -> dict:
    args = [_binary(), "describe", "--json"]
    with tempfile.TemporaryDirectory(prefix="holdline-describe-") as tmp:
        if config_text is not None:
            path = os.path.join(tmp, "gateway.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(config_text)
            args += ["--config", path]
        out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        # The gateway names the temporary file; what matters is the reason after it.
        message = out.stderr.strip().replace(f"{tmp}/gateway.toml: ", "")
        raise GatewayError(message or f"gateway describe exited {out.returncode}")
    return json.loads(out.stdout)


def catalogue() -> dict:
    """The metric catalogue: {"metrics": [{name, type, help, labels}], "label_values": {...}}."""
    return _describe(None)


def config(text: str) -> dict:
    """The config `text` as the gateway parses it; GatewayError with its message if invalid."""
    return _describe(text)["config"]
