"""Entry point of the Python checks: `python deploy/checks/run.py CHECK [--root DEPLOY_DIR]`.

Each CHECK prints its problems and exits 1 if there are any, so deploy/check.sh can run them as
separate steps. `dashboard-rules OUT` writes the dashboard's queries as a Prometheus rule file for
`promtool check rules`; `gateway-configs OUTDIR` writes every deployed gateway config to OUTDIR
and prints their paths, for `gateway check-config`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose  # noqa: E402
import dashboard  # noqa: E402
import gateway  # noqa: E402
import gateway_files  # noqa: E402
import k8s  # noqa: E402
import promql  # noqa: E402
import selftest  # noqa: E402

CHECKS = {
    "k8s": k8s.check,
    "compose": compose.check,
    "observability": lambda root: dashboard.check(root) + promql.check(root),
    "selftest": selftest.check,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=[*CHECKS, "dashboard-rules", "gateway-configs"])
    parser.add_argument("out", nargs="?", help="output file or directory")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    if args.check in ("dashboard-rules", "gateway-configs") and not args.out:
        parser.error(f"{args.check} needs an output path")
    if args.check == "dashboard-rules":
        Path(args.out).write_text(dashboard.as_rule_file(args.root))
        return 0
    if args.check == "gateway-configs":
        for path in gateway_files.export(args.root, Path(args.out)):
            print(path)
        return 0
    try:
        problems = CHECKS[args.check](args.root)
    except gateway.GatewayError as e:
        problems = [f"gateway describe: {e}"]
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
