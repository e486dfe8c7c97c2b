"""Every service's flags become one frozen config, validated once, that ``rpc.serve`` reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from controller_service.config import parse_args as controller_args
from katib_adapter.config import parse_args as katib_args
from trainer_service.config import parse_args as trainer_args

PARSERS: dict[str, Callable[[list[str]], Any]] = {
    "controller": controller_args,
    "trainer": trainer_args,
    "katib": katib_args,
}


@pytest.mark.parametrize("service", sorted(PARSERS))
def test_flags_make_a_frozen_config_serve_can_read(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NASRL_LOG_LEVEL", "DEBUG")
    config = PARSERS[service](["--port", "0", "--grace", "2.5"])
    assert (config.port, config.grace, config.log_level) == (0, 2.5, "DEBUG")
    assert config.metrics_port is None and not config.security.tls
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1


@pytest.mark.parametrize("service", sorted(PARSERS))
def test_bad_values_are_usage_errors(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        PARSERS[service](["--port", "70000"])
    assert info.value.code == 2 and "--port must be between 0 and 65535" in capsys.readouterr().err
    monkeypatch.setenv("NASRL_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit) as info:
        PARSERS[service]([])
    assert info.value.code == 2 and "NASRL_LOG_LEVEL must be" in capsys.readouterr().err
