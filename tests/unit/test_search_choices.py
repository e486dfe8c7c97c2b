"""The names the clients offer (``nasrl.core.search_choices``) are the ones the controller
accepts (screening scores and cost metrics: the controller reads them from there)."""

from __future__ import annotations

from controller_service import spec, stopping
from nasrl.core import search_choices


def test_the_clients_choices_are_the_controllers() -> None:
    assert search_choices.STOPPING_RULES == stopping.RULES
    assert set(search_choices.SPACE_NAMES) == set(spec.SPACES)
