"""Pin the Dockerfiles' base images by digest: ``FROM python:3.11-slim@sha256:...``.

Usage: make pin-base-images
       python scripts/pin_base_images.py [--digest sha256:HEX] [--check] [DOCKERFILE ...]

For each ``FROM NAME:TAG`` (Docker Hub images) it asks the registry for the tag's current
digest (the multi-platform index, so one digest serves amd64 and arm64) and rewrites the line
as ``FROM NAME:TAG@sha256:...``, keeping the tag for readers; Docker then pulls exactly that
digest. Run it again to move to the tag's latest rebuild (security updates), then commit.
``--digest`` writes a digest you looked up yourself (``docker buildx imagetools inspect
NAME:TAG``) without asking the registry; ``--check`` changes nothing and exits 1 while a FROM
is not pinned. A FROM that is not pinned yet carries an ``# UNPINNED`` comment above it, which
pinning removes. Default files: deploy/Dockerfile.*.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "https://registry-1.docker.io"
AUTH = "https://auth.docker.io/token"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
UNPINNED = "# UNPINNED"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FROM = re.compile(
    r"^(?P<lead>FROM\s+(?:--platform=\S+\s+)?)(?P<image>[^\s@]+)"
    r"(?P<digest>@sha256:[0-9a-f]{64})?(?P<rest>(?:\s+AS\s+\S+)?\s*)$",
    re.IGNORECASE,
)
TIMEOUT = 20.0


class PinError(Exception):
    """Something a person can act on; printed without a traceback."""


@dataclass(frozen=True)
class From:
    path: Path
    index: int  # line number, from 0
    image: str  # NAME:TAG
    digest: str | None  # sha256:HEX


def find_froms(path: Path) -> list[From]:
    found = []
    for i, line in enumerate(path.read_text().splitlines()):
        match = _FROM.match(line)
        if match:
            digest = match.group("digest")
            found.append(From(path, i, match.group("image"), digest[1:] if digest else None))
    if not found:
        raise PinError(f"{path}: no FROM line")
    return found


def repository(image: str) -> tuple[str, str]:
    """``python:3.11-slim`` -> (``library/python``, ``3.11-slim``); Docker Hub images only."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        raise PinError(f"{image}: give the base image a tag (NAME:TAG) before pinning it")
    first = name.split("/")[0]
    if "." in first or ":" in first or first == "localhost":
        raise PinError(f"{image}: only Docker Hub images are looked up; pass --digest for others")
    return (name if "/" in name else f"library/{name}"), tag


def _fetch(request: urllib.request.Request | str) -> tuple[bytes, Message]:
    """The body and headers of a request, or a PinError that says what to do."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.read(), response.headers
    except urllib.error.HTTPError as err:
        raise PinError(f"{url} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise PinError(
            f"cannot reach {url} ({reason}): run this where Docker Hub is reachable, or pass "
            "--digest sha256:... as printed by `docker buildx imagetools inspect IMAGE`"
        ) from None


def resolve(image: str, registry: str = REGISTRY, auth: str = AUTH) -> str:
    """The digest the registry serves for ``image``'s tag now."""
    repo, tag = repository(image)
    query = urllib.parse.urlencode(
        {"service": "registry.docker.io", "scope": f"repository:{repo}:pull"}
    )
    body, _ = _fetch(f"{auth}?{query}")
    try:
        token = str(json.loads(body)["token"])
    except (ValueError, KeyError, TypeError):
        raise PinError(f"{auth} did not answer a token") from None
    request = urllib.request.Request(
        f"{registry}/v2/{repo}/manifests/{urllib.parse.quote(tag)}",
        method="HEAD",
        headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES},
    )
    _, headers = _fetch(request)
    digest = headers.get("Docker-Content-Digest", "")
    if not DIGEST.match(digest):
        raise PinError(f"{registry} gave no sha256 digest for {image} (got {digest!r})")
    return str(digest)


def rewrite(path: Path, digests: dict[str, str]) -> bool:
    """Pin every FROM of ``path`` whose image is in ``digests``; True when the file changed."""
    lines = path.read_text().splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        match = _FROM.match(line.rstrip("\n"))
        if match and match.group("image") in digests:
            if out and out[-1].startswith(UNPINNED):
                out.pop()
            line = (
                f"{match.group('lead')}{match.group('image')}@{digests[match.group('image')]}"
                f"{match.group('rest')}\n"
            )
        out.append(line)
    text = "".join(out)
    changed = text != "".join(lines)
    if changed:
        path.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pin the Dockerfiles' base images by digest.")
    parser.add_argument(
        "dockerfiles", nargs="*", type=Path, default=sorted((ROOT / "deploy").glob("Dockerfile.*"))
    )
    parser.add_argument("--digest", help="write this sha256:HEX instead of asking the registry")
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 while a FROM is not pinned by digest",
    )
    parser.add_argument("--registry", default=REGISTRY, help=argparse.SUPPRESS)
    parser.add_argument("--auth", default=AUTH, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        froms = [f for path in args.dockerfiles for f in find_froms(path)]
        images = sorted({f.image for f in froms})
        if args.check:
            loose = [f"{f.path}:{f.index + 1}: FROM {f.image}" for f in froms if f.digest is None]
            for item in loose:
                print(f"not pinned by digest: {item} (make pin-base-images)", file=sys.stderr)
            return 1 if loose else 0
        if args.digest is not None:
            if not DIGEST.match(args.digest):
                raise PinError(f"--digest must be sha256: and 64 hex digits, not {args.digest!r}")
            if len(images) != 1:
                raise PinError(f"--digest fits one base image; these files use {images}")
            digests = {images[0]: args.digest}
        else:
            digests = {image: resolve(image, args.registry, args.auth) for image in images}
        for path in args.dockerfiles:
            state = "pinned" if rewrite(path, digests) else "unchanged"
            print(f"{path}: {state}")
        for image, digest in digests.items():
            print(f"{image} -> {digest}")
    except (PinError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
