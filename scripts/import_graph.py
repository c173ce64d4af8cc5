"""Print talkface's package import graph for docs/architecture.md, and what breaks the layer rules.

    python scripts/import_graph.py            # "package -> packages it imports", one line each
    python scripts/import_graph.py --modules  # the same per module (talkface.gan.train -> ...)

A node is a subpackage (talkface/gan/) or a top-level module (talkface/audio.py). Every import
counts, also one inside a function or under TYPE_CHECKING: a lazy import is still a dependency.
After the graph come the breaches of docs/architecture.md's rules, one line each: a cycle, an
import from a lower layer to a higher one (LAYERS below), and a training module that
`talkface infer` reaches. The exit status is 1 when there is any, so the script can guard a test.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "talkface"

# docs/architecture.md, "Layers": a package may import its own layer and the layers before it.
LAYERS = (
    ("foundation", {"errors", "atomic", "keyed", "provenance", "threads", "tvcompat", "config", "benchmarking"}),
    ("contracts", {"media", "audio", "metrics", "workspace", "speech"}),
    ("machinery", {"train", "face3d", "render", "arcface"}),
    ("stages", {"recon", "motion", "background", "gan", "sync", "evaluation"}),
    ("worlds", {"synth", "convert"}),
    ("pipelines", {"pipelines"}),
    ("commands", {"commands"}),
    ("entry", {"cli", "__main__"}),
)
INFERENCE_ROOT = "talkface.pipelines.infer"
# Stage training code (and the shared loop) that inference must never reach.
TRAINING = re.compile(r"^talkface\.(\w+\.train|train\.trainer|train\.task)$")


def module_name(path: Path) -> str:
    """talkface/gan/train.py -> talkface.gan.train; talkface/gan/__init__.py -> talkface.gan."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The talkface modules `path` imports (absolute names; relative imports resolved)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from talkface import audio`
    # Importing talkface.a.b runs talkface/a/__init__.py first: the package is imported too.
    found |= {name.rsplit(".", depth)[0] for name in found for depth in range(1, name.count("."))}
    known = {module_name(p) for p in ROOT.rglob("*.py")}
    return {name for name in found if name in known and name != "talkface"}


def node(module: str) -> str:
    """The graph node of a module: talkface.gan.train -> gan, talkface.audio -> audio."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def graph(per_module: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = module_name(path)
        if source == "talkface":
            continue
        key = source if per_module else node(source)
        targets = {t if per_module else node(t) for t in imported_modules(path)}
        edges.setdefault(key, set()).update(targets - {key})
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(package: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if package in members:
            return rank
    raise SystemExit(f"{package} is in no layer of scripts/import_graph.py LAYERS; add it (docs/architecture.md)")


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """'a -> b' for every package import from a lower layer to a higher one."""
    return [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
            for a in sorted(edges) for b in sorted(edges[a]) if layer_of(b) > layer_of(a)]


def training_reached(modules: dict[str, set[str]]) -> list[str]:
    """The training modules INFERENCE_ROOT reaches through imports, each with the chain that reaches it."""
    chains = {INFERENCE_ROOT: [INFERENCE_ROOT]}
    queue = [INFERENCE_ROOT]
    while queue:
        current = queue.pop(0)
        for target in sorted(modules.get(current, ())):
            if target not in chains:
                chains[target] = chains[current] + [target]
                queue.append(target)
    return [" -> ".join(chain) for name, chain in sorted(chains.items()) if TRAINING.match(name)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="one line per module instead of per package")
    args = parser.parse_args()
    sys.setrecursionlimit(10000)
    edges = graph(args.modules)
    for source in sorted(edges):
        print(f"{source} -> {', '.join(sorted(edges[source])) or '(nothing)'}")
    problems = [f"CYCLE: {' <-> '.join(loop)}" for loop in cycles(edges)]
    if not args.modules:
        problems += [f"UPWARD: {line}" for line in upward_imports(edges)]
    problems += [f"INFERENCE REACHES TRAINING: {line}" for line in training_reached(graph(per_module=True))]
    print("\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
