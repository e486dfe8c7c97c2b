"""nasrl's packages keep their dependency direction (``core`` ← ``rpc`` ← ``runner`` ← ``cli``),
and the ``nasrl health`` path loads neither torch nor matplotlib."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NASRL = Path(__file__).resolve().parents[2] / "nasrl"

# what each package may not import, at module level or inside a function
FORBIDDEN = {
    "core": ("nasrl.rpc", "nasrl.cli", "grpc", "grpc_health", "grpc_reflection"),
    "rpc": ("nasrl.cli", "nasrl.runner"),
    # library code (the benchmarks and tests import it): no CLI, no terminal or plotting
    "runner": ("nasrl.cli", "nasrl.dashboard", "rich", "matplotlib"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downwards(package: str) -> None:
    files = sorted((NASRL / package).glob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(NASRL.parent)}: {name}"
        for path in files
        for name in imported(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
    }
    assert not wrong, sorted(wrong)


def test_the_top_package_imports_nothing() -> None:
    assert imported(NASRL / "__init__.py") == set()


def test_health_path_loads_neither_torch_nor_matplotlib() -> None:
    # nothing listens on port 1: the probe runs its whole path and fails in well under a second
    code = textwrap.dedent("""
        import json, sys
        from nasrl.cli import main
        rc = main(["health", "127.0.0.1:1", "--timeout", "0.2"])
        heavy = ("torch", "matplotlib", "rich", "numpy", "nasrl.core", "nasrl.rpc.client")
        print(json.dumps({"rc": rc, "loaded": [m for m in heavy if m in sys.modules]}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == {"rc": 1, "loaded": []}, r.stderr


def test_the_dashboard_is_a_client_never_of_the_database() -> None:
    """nasrl.dashboard reads the controller through its RPCs like the CLI: it imports neither
    service's code nor sqlite3."""
    files = sorted((NASRL / "dashboard").glob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(NASRL.parent)}: {name}"
        for path in files
        for name in imported(path)
        if name.split(".")[0] in ("controller_service", "trainer_service", "sqlite3")
    }
    assert not wrong, sorted(wrong)
