"""The package's structure in figures, from its own source (nothing is imported or run):

    python tools/structure.py [--src src/maskcls] [--tests tests]

modules; import arrows (distinct module -> module imports of the package, at any depth of the file);
arrows that point up (an importer on a lower floor than what it imports, floors as FLOORS lists them);
package circles (two packages that import each other); functions over 50 lines; public functions and
methods of the package's modules without a docstring; tests, and tests whose name carries a number.
The architecture page records these figures before and after a restructuring.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

# Floors, lowest first: a module may import its own floor or lower ones. Top-level modules are named
# by file, packages by folder.
FLOORS = [
    {"errors", "labels", "photos", "fileio", "progress", "metrics", "figures", "choices"},
    {"config"},
    {"faces"},
    {"data"},
    {"training"},
    {"audit", "experiments", "serve", "reports"},  # the consumers: each reads runs, writes its pages or files
    {"cli", "demo", "__main__", "__init__"},
]


def floor_of(module: str) -> int:
    head = module.split(".")[0]
    for i, names in enumerate(FLOORS):
        if head in names:
            return i
    raise SystemExit(f"{module}: not on any floor of FLOORS; add it")


def modules(src: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules ``name`` imports (relative imports resolved), anywhere in the file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            elif node.module and node.module.split(".")[0] == "maskcls":
                base = []
            else:
                continue
            mod = [p for p in (node.module or "").split(".") if p]
            if mod and mod[0] == "maskcls" and not node.level:
                mod = mod[1:]
            stem = base + mod
            for alias in node.names:
                full = ".".join(stem + [alias.name])
                targets.append(full if full in known else ".".join(stem))
        elif isinstance(node, ast.Import):
            targets += [a.name.removeprefix("maskcls.") for a in node.names if a.name.startswith("maskcls.")]
        out |= {t for t in targets if t in known and t != name and t}
    return out


def long_functions(path: Path, limit: int = 50) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.name}:{n.name} ({n.end_lineno - n.lineno + 1})" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def undocumented(path: Path) -> list[str]:
    """Public functions and methods of public classes, at module or class level, without a docstring."""
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            out += [node.name] if ast.get_docstring(node) is None else []
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out += [f"{node.name}.{m.name}" for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and not m.name.startswith("_") and ast.get_docstring(m) is None]
    return [f"{path.name}:{n}" for n in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="src/maskcls")
    parser.add_argument("--tests", default="tests")
    parser.add_argument("--list", action="store_true", help="list the up arrows, long functions and circles")
    args = parser.parse_args()
    src = Path(args.src)
    mods = modules(src)
    arrows = {(m, t) for m, p in mods.items() for t in imports(m, p, set(mods))}
    up = sorted((a, b) for a, b in arrows if floor_of(a) < floor_of(b))
    pkgs = {(a.split(".")[0], b.split(".")[0]) for a, b in arrows if a.split(".")[0] != b.split(".")[0]}
    circles = sorted({tuple(sorted(p)) for p in pkgs if (p[1], p[0]) in pkgs})
    long = [f for p in mods.values() for f in long_functions(p)]
    bare = [f for p in mods.values() for f in undocumented(p)]
    tests = [n for p in Path(args.tests).glob("test_*.py") for n in re.findall(r"^def (test_\w+)", p.read_text(), re.M)]
    numbered = [t for t in tests if re.match(r"test_\d", t)]
    print(f"modules {len(mods)}; import arrows {len(arrows)}; arrows that point up {len(up)}; package circles "
          f"{len(circles)}; functions over 50 lines {len(long)}; public functions without a docstring {len(bare)}; "
          f"tests {len(tests)} in {len(list(Path(args.tests).glob('test_*.py')))} files, {len(numbered)} numbered")
    if args.list:
        for a, b in up:
            print(f"  up: {a} -> {b}")
        for c in circles:
            print(f"  circle: {' <-> '.join(c)}")
        for f in long:
            print(f"  long: {f}")


if __name__ == "__main__":
    main()
