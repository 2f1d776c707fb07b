"""Resolves the kustomizations under deploy/k8s into the list of resources each one applies.

Only `resources` is supported, on purpose: the other checks read the manifests as written, so a
kustomization that patched or renamed something would make them check the wrong thing. A
kustomization using any other field is reported instead of half-understood.
"""

from pathlib import Path

from common import is_resource, key, load_yaml_docs, rel

ALLOWED_FIELDS = {"apiVersion", "kind", "resources"}


class Bundle:
    """The resources one kustomization (plus optional extras) applies, with their files."""

    def __init__(self, name: str):
        self.name = name
        self.items: list[tuple[Path, dict]] = []
        self.kustomizations: set[Path] = set()

    def docs(self, kind: str | None = None) -> list[dict]:
        return [d for _, d in self.items if kind is None or d.get("kind") == kind]

    def find(self, kind: str, name: str) -> dict | None:
        for d in self.docs(kind):
            if (d.get("metadata") or {}).get("name") == name:
                return d
        return None


def resolve(directory: Path, root: Path, problems: list[str], bundle: Bundle, seen=None) -> None:
    """Adds every resource `directory`'s kustomization reaches to `bundle`."""
    seen = set() if seen is None else seen
    kfile = directory / "kustomization.yaml"
    where = rel(kfile, root)
    if not kfile.is_file():
        problems.append(f"{rel(directory, root)}: no kustomization.yaml")
        return
    if directory.resolve() in seen:
        problems.append(f"{where}: reached twice (a cycle or a diamond kustomize would reject)")
        return
    seen.add(directory.resolve())
    bundle.kustomizations.add(directory.resolve())
    docs = load_yaml_docs(kfile)
    spec = docs[0] if docs else {}
    extra = set(spec) - ALLOWED_FIELDS
    if extra:
        problems.append(f"{where}: unsupported fields {sorted(extra)} (only resources is checked)")
    if spec.get("kind") != "Kustomization":
        problems.append(f"{where}: kind must be Kustomization")
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            resolve(target, root, problems, bundle, seen)
        elif target.is_file():
            for doc in load_yaml_docs(target):
                if not is_resource(doc):
                    problems.append(f"{rel(target, root)}: document without apiVersion/kind")
                    continue
                if any(key(d) == key(doc) for _, d in bundle.items):
                    problems.append(f"{rel(target, root)}: {key(doc)} defined twice in {bundle.name}")
                bundle.items.append((target, doc))
        else:
            problems.append(f"{where}: resource {entry} does not exist")


def bundle_of(dirs: list[Path], root: Path, problems: list[str]) -> Bundle:
    """One bundle from several kustomization directories applied together."""
    bundle = Bundle(" + ".join(rel(d, root) for d in dirs))
    seen: set = set()
    for d in dirs:
        resolve(d, root, problems, bundle, seen)
    return bundle
