"""Transport security and authentication shared by every service, the runner and the CLI.

Servers: TLS with ``--tls-cert``/``--tls-key``; mutual TLS when ``--tls-client-ca`` is given
(clients must present a certificate that CA signed); bearer tokens with
``--auth-token-file`` (one token per line), checked by an interceptor in constant time. The
gRPC health service stays open without a token so that orchestrators can probe it, and so do
server-reflection requests that resolve only the health service (what ``grpcurl`` sends
before ``grpc.health.v1.Health/Check``); any other reflection request without a token ends
the stream with ``UNAUTHENTICATED``, so the API is not listed to strangers.

Clients: ``--tls-ca`` (trust this CA; server authentication), ``--tls-cert``/``--tls-key`` (a
client certificate for mutual TLS), ``--token-file`` or ``NASRL_TOKEN`` (sent as
``authorization: Bearer …``). Tokens are never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = ["ServerSecurity", "ClientSecurity", "TokenAuthInterceptor", "SecurityError"]

log = logging.getLogger(__name__)

OPEN_METHODS = ("/grpc.health.v1.Health/",)
REFLECTION_METHODS = "/grpc.reflection."
HEALTH_PACKAGE = "grpc.health.v1."
HEALTH_FILE = "grpc/health/v1/health.proto"
UNAUTHENTICATED = "missing or invalid token: send 'authorization: Bearer TOKEN'"
MAX_TOKEN = 4096


class SecurityError(ValueError):
    """A certificate, key or token file that cannot be used; the message says which."""


def _read(path: str | Path | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def read_tokens(path: str | Path) -> list[bytes]:
    """Non-empty lines of a token file (several lines allow rotating tokens)."""
    data = _read(path, "token file") or b""
    tokens = [line.strip() for line in data.splitlines() if line.strip()]
    if not tokens:
        raise SecurityError(f"the token file {path} holds no token")
    if any(len(t) > MAX_TOKEN for t in tokens):
        raise SecurityError(f"a token in {path} is longer than {MAX_TOKEN} bytes")
    return tokens


@dataclass(frozen=True)
class ServerSecurity:
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    token_file: str | None = None

    @classmethod
    def from_env(cls) -> ServerSecurity:
        env = os.environ.get
        return cls(
            env("NASRL_TLS_CERT"),
            env("NASRL_TLS_KEY"),
            env("NASRL_TLS_CLIENT_CA"),
            env("NASRL_AUTH_TOKEN_FILE"),
        )

    @property
    def tls(self) -> bool:
        return bool(self.cert or self.key)

    def credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls:
            if self.client_ca:
                raise SecurityError("--tls-client-ca needs --tls-cert and --tls-key as well")
            return None
        if not (self.cert and self.key):
            raise SecurityError("TLS needs both --tls-cert and --tls-key")
        key, cert = _read(self.key, "TLS key"), _read(self.cert, "TLS certificate")
        assert key is not None and cert is not None
        ca = _read(self.client_ca, "client CA")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        return [TokenAuthInterceptor(read_tokens(self.token_file))] if self.token_file else []


def add_server_flags(p: Any) -> None:
    """The server-side security flags (argparse), defaulting to NASRL_* variables."""
    env = os.environ.get
    p.add_argument(
        "--tls-cert",
        default=env("NASRL_TLS_CERT"),
        help="server certificate (PEM) [NASRL_TLS_CERT]",
    )
    p.add_argument(
        "--tls-key", default=env("NASRL_TLS_KEY"), help="server private key (PEM) [NASRL_TLS_KEY]"
    )
    p.add_argument(
        "--tls-client-ca",
        default=env("NASRL_TLS_CLIENT_CA"),
        help="require client certificates signed by this CA: mutual TLS [NASRL_TLS_CLIENT_CA]",
    )
    p.add_argument(
        "--auth-token-file",
        default=env("NASRL_AUTH_TOKEN_FILE"),
        help="require 'authorization: Bearer TOKEN' with a token from this file "
        "(one per line) [NASRL_AUTH_TOKEN_FILE]",
    )


def server_security(args: Any) -> ServerSecurity:
    return ServerSecurity(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Refuse every call without a valid bearer token, except the health service."""

    def __init__(self, tokens: list[bytes]) -> None:
        self._tokens = tokens

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)

        self._deny_unary: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            deny
        )
        self._deny_stream: grpc.RpcMethodHandler[Any, Any] = grpc.unary_stream_rpc_method_handler(
            deny
        )

    def _valid(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                raw = value.encode() if isinstance(value, str) else value
                if not raw.startswith(b"Bearer "):
                    return False
                given = raw[len(b"Bearer ") :].strip()
                # compare with every token so the time taken does not say which one matched
                return sum(hmac.compare_digest(given, t) for t in self._tokens) > 0
        return False

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHODS) or self._valid(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if method.startswith(REFLECTION_METHODS):
            # None: a reflection version this server lacks answers UNIMPLEMENTED, so clients
            # (grpcurl) fall back to the one it has
            return handler and _health_only_reflection(handler)
        if handler is not None and handler.response_streaming:
            return self._deny_stream
        return self._deny_unary


def _resolves_health_only(request: Any) -> bool:
    """Whether a ``ServerReflectionRequest`` asks only about the health service's file."""
    kind = request.WhichOneof("message_request")
    if kind == "file_by_filename":
        return bool(request.file_by_filename == HEALTH_FILE)
    if kind in ("file_containing_symbol", "all_extension_numbers_of_type"):
        return bool(getattr(request, kind).startswith(HEALTH_PACKAGE))
    if kind == "file_containing_extension":
        return bool(request.file_containing_extension.containing_type.startswith(HEALTH_PACKAGE))
    return False  # list_services and anything newer


def _health_only_reflection(handler: Any) -> Any:
    """The reflection stream, ended with UNAUTHENTICATED at the first request that asks about
    anything but the health service."""

    def checked(requests: Any, context: grpc.ServicerContext) -> Any:
        for request in requests:
            if not _resolves_health_only(request):
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"{UNAUTHENTICATED}; without one, reflection resolves only "
                    "grpc.health.v1.Health",
                )
            yield request

    def behaviour(requests: Any, context: grpc.ServicerContext) -> Any:
        return handler.stream_stream(checked(requests, context), context)

    return grpc.stream_stream_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


@dataclass(frozen=True)
class ClientSecurity:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    token: str | None = None

    @classmethod
    def from_env(cls) -> ClientSecurity:
        env = os.environ.get
        token = env("NASRL_TOKEN")
        if not token and env("NASRL_TOKEN_FILE"):
            token = read_tokens(env("NASRL_TOKEN_FILE", ""))[0].decode()
        return cls(
            env("NASRL_TLS_CA"), env("NASRL_TLS_CLIENT_CERT"), env("NASRL_TLS_CLIENT_KEY"), token
        )

    @property
    def tls(self) -> bool:
        return bool(self.ca or self.cert)

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        if bool(self.cert) != bool(self.key):
            raise SecurityError("a client certificate needs both --tls-cert and --tls-key")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA certificate"),
            private_key=_read(self.key, "client key"),
            certificate_chain=_read(self.cert, "client certificate"),
        )

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []


def add_client_flags(p: Any) -> None:
    """The client-side security flags (argparse), defaulting to NASRL_* variables."""
    env = os.environ.get
    p.add_argument(
        "--tls-ca",
        default=env("NASRL_TLS_CA"),
        help="use TLS and trust servers signed by this CA (PEM) [NASRL_TLS_CA]",
    )
    p.add_argument(
        "--tls-cert",
        default=env("NASRL_TLS_CLIENT_CERT"),
        help="client certificate for mutual TLS [NASRL_TLS_CLIENT_CERT]",
    )
    p.add_argument(
        "--tls-key",
        default=env("NASRL_TLS_CLIENT_KEY"),
        help="client key for mutual TLS [NASRL_TLS_CLIENT_KEY]",
    )
    p.add_argument(
        "--token-file",
        default=env("NASRL_TOKEN_FILE"),
        help="send the token in this file as 'authorization: Bearer …' "
        "[NASRL_TOKEN_FILE, or the token itself in NASRL_TOKEN]",
    )


def client_security(args: Any) -> ClientSecurity:
    token = os.environ.get("NASRL_TOKEN") or None
    if getattr(args, "token_file", None):
        token = read_tokens(args.token_file)[0].decode()
    return ClientSecurity(
        getattr(args, "tls_ca", None),
        getattr(args, "tls_cert", None),
        getattr(args, "tls_key", None),
        token,
    )
