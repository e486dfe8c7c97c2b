"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import torch_threads


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one thread for the module (tests that train share 2 cores with servers)."""
    with torch_threads(1):
        yield
