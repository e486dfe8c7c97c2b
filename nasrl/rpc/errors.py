"""The error every nasrl client call raises. Light on purpose (grpc only): ``nasrl health``
imports it without the rest of the client."""

from __future__ import annotations

import grpc

__all__ = ["NasrlError"]


class NasrlError(Exception):
    """A failed call: ``code`` is the gRPC status, the message is the server's sentence."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.args[0]}"

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, target: str) -> NasrlError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"cannot reach {target} ({details})"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            details = f"{target} did not answer in time ({details})"
        return cls(code, details or code.name)
