"""The committed generated code matches protos/*.proto (regenerate: python scripts/gen_protos.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate = runpy.run_path(str(ROOT / "scripts" / "gen_protos.py"))["generate"]
    fresh = generate(tmp_path)
    assert {p.name for p in fresh} >= {
        "trainer_pb2.py",
        "trainer_pb2_grpc.py",
        "trainer_pb2.pyi",
        "architecture_pb2.py",
    }
    stale = [p.name for p in fresh if p.read_bytes() != (ROOT / "protos" / p.name).read_bytes()]
    assert not stale, f"stale generated code {stale}: run python scripts/gen_protos.py"


def test_every_rpc_and_field_is_commented() -> None:
    for proto in (ROOT / "protos").glob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            s = line.strip()
            is_field = s.endswith(";") and "=" in s and not s.startswith(("option", "syntax"))
            if s.startswith("rpc ") or s.startswith("message ") or is_field:
                before = lines[i - 1].strip()
                assert (
                    before.startswith("//")
                    or "//" in line
                    or before.endswith("{")
                    and s.startswith("message")
                ), f"{proto.name}:{i + 1} has no comment: {s}"
