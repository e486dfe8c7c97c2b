"""Write the hash-locked requirements the Docker images install (deploy/requirements/*.txt).

Usage: make lock-images   (= python scripts/lock_images.py [--index-url URL])

- trainer.txt: ``uv pip compile`` of pyproject.toml's dependencies plus build.in (setuptools and
  wheel, so the image builds nasrl without build isolation) from PyPI, for CPython 3.11 on
  x86_64 Linux (the python:3.11-slim images), wheels only, every wheel's sha256. torch is PyPI's
  build, the CUDA one, with the nvidia-* / cuda-* / triton packages it pulls in.
- controller.txt: trainer.txt without torch, torchvision and the CUDA packages only they need
  (same versions of everything else, so the two images cannot drift apart).
- torch-cpu.txt: the CPU builds of torch and torchvision (``torch==X+cpu``, versions from
  pyproject.toml) from the PyTorch CPU index, with their hashes; the controller installs them
  with ``--no-deps`` after controller.txt. Where that index cannot be reached, the file is
  written with the exact versions but no hashes and an ``# UNHASHED`` header, and this script
  exits 1: run it again where the index is reachable.

tests/unit/test_image_locks.py checks that the committed files agree with pyproject.toml.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "deploy" / "requirements"
PYPI = "https://pypi.org/simple"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMMAND = "make lock-images"
TARGET = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
TORCH_PACKAGES = ("torch", "torchvision")
# Packages the CUDA build of torch pulls in and the CPU build does not.
CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
UNHASHED = "# UNHASHED"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class LockError(Exception):
    """Something a person running the script can act on; printed without a traceback."""


@dataclass(frozen=True)
class Block:
    """One requirement of a uv lock: its pin line, hashes and ``# via`` comment, as text."""

    name: str
    version: str
    via: frozenset[str]
    text: str


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> tuple[str, list[Block]]:
    """The header (comment lines before the first requirement) and the requirement blocks."""
    header: list[str] = []
    chunks: list[list[str]] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
        else:
            header.append(line)
    blocks = []
    for chunk in chunks:
        match = _PIN.match(chunk[0])
        if match is None:
            raise LockError(f"not an exact pin in the lock: {chunk[0]!r}")
        blocks.append(
            Block(
                normalize(match.group(1)), match.group(2), _via(chunk[1:]), "\n".join(chunk) + "\n"
            )
        )
    return "\n".join(header) + "\n" if header else "", blocks


def _via(lines: list[str]) -> frozenset[str]:
    """Names in uv's ``# via X`` or ``# via`` + ``#   X`` lines (``-r FILE`` inputs kept as is)."""
    names: set[str] = set()
    in_via = False
    for line in (raw.strip() for raw in lines):
        if line.startswith("# via"):
            rest = line[len("# via") :].strip()
            if rest:
                names.add(rest if rest.startswith("-r ") else normalize(rest.split()[0]))
            in_via = True
        elif in_via and line.startswith("#   "):
            item = line[1:].strip()
            names.add(item if item.startswith("-r ") else normalize(item.split()[0]))
    return frozenset(names)


def controller_lock(trainer_text: str) -> str:
    """trainer.txt less torch, torchvision and whatever only the CUDA packages need."""
    header, blocks = parse_lock(trainer_text)
    dropped = {b.name for b in blocks if b.name in TORCH_PACKAGES or CUDA_ONLY.match(b.name)}
    cuda = {b.name for b in blocks if CUDA_ONLY.match(b.name)}
    changed = True
    while changed:  # a package wanted only by dropped CUDA packages goes too
        changed = False
        for b in blocks:
            if b.name not in dropped and b.via and b.via <= cuda:
                dropped.add(b.name)
                cuda.add(b.name)
                changed = True
    note = (
        f"# Derived from trainer.txt by `{COMMAND}`: the same pins less torch, torchvision and\n"
        "# the CUDA packages (torch and torchvision come from torch-cpu.txt, CPU builds).\n"
    )
    return header + note + "".join(b.text for b in blocks if b.name not in dropped)


def torch_versions(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """torch's and torchvision's exact pins in pyproject.toml."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    found = {}
    for dep in deps:
        match = _PIN.match(dep.replace(" ", ""))
        if match and normalize(match.group(1)) in TORCH_PACKAGES:
            found[normalize(match.group(1))] = match.group(2)
    missing = [n for n in TORCH_PACKAGES if n not in found]
    if missing:
        raise LockError(f"pyproject.toml must pin {', '.join(missing)} with == (found {deps})")
    return found


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise LockError("uv is not installed: pip install -e '.[dev]' (it pins uv)")
    return found


def _compile(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_uv(), "pip", "compile", "--quiet", *args], cwd=ROOT, capture_output=True, text=True
    )


def lock_trainer(index_url: str) -> str:
    out = REQUIREMENTS / "trainer.txt"
    result = _compile(
        [
            "pyproject.toml",
            "deploy/requirements/build.in",
            *TARGET,
            "--only-binary",
            ":all:",
            "--generate-hashes",
            "--index-url",
            index_url,
            "--custom-compile-command",
            COMMAND,
            "-o",
            str(out.relative_to(ROOT)),
        ]
    )
    if result.returncode != 0:
        raise LockError(f"uv could not lock the trainer's requirements:\n{result.stderr.strip()}")
    return out.read_text()


def lock_torch_cpu(versions: dict[str, str]) -> bool:
    """Write torch-cpu.txt; False when the index was unreachable and the file has no hashes."""
    out = REQUIREMENTS / "torch-cpu.txt"
    pins = [f"{name}=={versions[name]}+cpu" for name in TORCH_PACKAGES]
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "torch-cpu.in"
        spec.write_text("\n".join(pins) + "\n")
        result = _compile(
            [
                str(spec),
                *TARGET,
                "--no-deps",
                "--only-binary",
                ":all:",
                "--generate-hashes",
                "--index-url",
                TORCH_CPU_INDEX,
                "--no-header",
            ]
        )
    head = (
        f"# Written by `{COMMAND}`: the CPU builds of torch and torchvision for the controller\n"
        f"# image, installed with --no-deps from {TORCH_CPU_INDEX} after controller.txt.\n"
    )
    if result.returncode == 0:
        out.write_text(head + result.stdout)
        return True
    lines = result.stderr.strip().splitlines() or ["no output from uv"]
    reason = lines[-1].strip().removeprefix("cause:").strip()
    out.write_text(
        head + f"{UNHASHED}: {TORCH_CPU_INDEX} could not be reached when this file was written\n"
        f"# ({reason}),\n# so these pins carry no --hash and pip installs them by exact version"
        f" only.\n# Run `{COMMAND}` where that index is reachable to add the hashes; pip then\n"
        "# checks them (hash-checking mode turns on by itself once a line has a --hash).\n"
        + "".join(f"{pin}\n" for pin in pins)
    )
    print(
        f"warning: {TORCH_CPU_INDEX} unreachable ({reason}); {out.relative_to(ROOT)} has "
        "exact versions but no hashes",
        file=sys.stderr,
    )
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--index-url",
        default=PYPI,
        help=f"the index for everything but the CPU torch builds (default {PYPI})",
    )
    args = parser.parse_args(argv)
    try:
        versions = torch_versions()
        trainer = lock_trainer(args.index_url)
        (REQUIREMENTS / "controller.txt").write_text(controller_lock(trainer))
        hashed = lock_torch_cpu(versions)
    except LockError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    names = ", ".join(
        f"deploy/requirements/{n}" for n in ("trainer.txt", "controller.txt", "torch-cpu.txt")
    )
    print(f"wrote {names}" + ("" if hashed else " (torch-cpu.txt without hashes, see above)"))
    return 0 if hashed else 1


if __name__ == "__main__":
    sys.exit(main())
