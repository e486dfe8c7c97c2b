"""Trainer addresses: ``HOST:PORT`` lists and ``dns:///NAME:PORT`` names resolved to every
address behind them."""

from __future__ import annotations

import socket
from collections.abc import Callable

__all__ = ["Resolver", "parse_trainers", "dns_name", "resolve_dns"]

Resolver = Callable[[str], list[str]]


def parse_trainers(spec: str, resolve: Resolver | None = None) -> tuple[list[str], str | None]:
    """``h1:p,h2:p`` → (addresses, None); ``dns:///name:p`` → (resolved addresses, spec)."""
    spec = spec.strip()
    if spec.startswith("dns:"):
        return (resolve or resolve_dns)(spec), spec
    targets = [t.strip() for t in spec.split(",") if t.strip()]
    for t in targets:
        host, _, port = t.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"trainer {t!r} is not HOST:PORT (or use dns:///NAME:PORT)")
    if not targets:
        raise ValueError("no trainers given: use HOST:PORT[,HOST:PORT...] or dns:///NAME:PORT")
    return targets, None


def dns_name(spec: str) -> tuple[str, str]:
    """(NAME, PORT) of a ``dns:///NAME:PORT`` target."""
    hostport = spec.split("///", 1)[-1] if "///" in spec else spec[len("dns:") :]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{spec!r} is not dns:///NAME:PORT")
    return host, port


def resolve_dns(spec: str) -> list[str]:
    """Every address a ``dns:///name:port`` target resolves to, as ``ip:port``."""
    host, port = dns_name(spec)
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]
