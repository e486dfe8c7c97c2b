"""Regenerate protos/*_pb2.py, *_pb2_grpc.py and *.pyi from protos/*.proto.

Usage: python scripts/gen_protos.py [OUT_DIR]   (default: the repository root, in place)

The proto files live in protos/ and import each other as "protos/x.proto", so the generated
modules import each other as ``from protos import x_pb2`` (the proto path mirrors the Python
package). tests/unit/test_protos.py runs this into a temporary folder and fails when the
committed files differ.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out: Path) -> list[Path]:
    protos = sorted((ROOT / "protos").glob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
    ]
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):  # from mypy-protobuf
        plugin = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
        if not plugin:
            raise SystemExit(f"{name} not found: pip install -e '.[dev]' (mypy-protobuf)")
        args.insert(1, f"--plugin={name}={plugin}")
    args += [str(p.relative_to(ROOT)) for p in protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out / "protos").glob("*_pb2*.py*"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for path in generate(target):
        print(path.relative_to(target))
