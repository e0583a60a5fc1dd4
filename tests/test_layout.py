"""
Tests for the package layout: netd's modules import each other without a circle, and its
subpackages depend on each other one way, so the layout can be read as the architecture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import netd

ROOT = Path(netd.__file__).resolve().parent


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """
    The netd modules C{name} imports anywhere in its file: at module level, under
    C{TYPE_CHECKING} or inside a function, since a deferred import is still a dependency.
    """
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = name.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + [node.module])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(known: Mapping[str, Path]) -> dict[str, set[str]]:
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def circle(edges: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle of C{edges} as the list of its nodes, or C{None} if there is none."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return trail[trail.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        trail.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def packageOf(module: str) -> str:
    """C{netd.config.policy} -> C{netd.config}; a top-level module stands for itself."""
    return ".".join(module.split(".")[:2])


class LayoutTests(SynchronousTestCase):
    def test_noModuleCircle(self) -> None:
        """No chain of imports, type-only and function-local ones included, leads back to its start."""
        self.assertIsNone(circle(graph(modules())))

    def test_packagesPointOneWay(self) -> None:
        """The subpackages and top-level modules depend on each other without a circle."""
        edges: dict[str, set[str]] = {}
        for source, targets in graph(modules()).items():
            for target in targets:
                if target != "netd" and packageOf(source) != packageOf(target):
                    edges.setdefault(packageOf(source), set()).add(packageOf(target))
        self.assertIsNone(circle(edges))

    def test_lowerLayersImportNothingAbove(self) -> None:
        """Listening, admission, forwarding and configuration never import the layers that use them."""
        above = {
            "netd.listen": {"netd.admission", "netd.config", "netd.serving"},
            "netd.admission": {"netd.config", "netd.serving"},
            "netd.config": {"netd.serving", "netd.admin", "netd.workers"},
            "netd.coerce": {"netd.config", "netd.admission", "netd.serving", "netd.listen"},
            # the config file and command line read forward keys: forwarding is below them
            "netd.forward": {"netd.config", "netd.serving", "netd.admin", "netd.workers"},
        }
        for source, targets in graph(modules()).items():
            forbidden = above.get(packageOf(source), set())
            for target in targets:
                self.assertNotIn(packageOf(target), forbidden, f"{source} imports {target}")

    def test_circleIsFound(self) -> None:
        """The checker itself finds a circle, so a passing test means something."""
        self.assertEqual(circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}), ["a", "b", "c", "a"])
        self.assertIsNone(circle({"a": {"b"}, "b": {"c"}}))
