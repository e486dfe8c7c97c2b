"""The convergence rule's exploration by mutation (``--explore-by mutations``, the default):
its draws are one-operation changes of the best results so far, the same for the same key."""

from __future__ import annotations

import random

from controller_service.agents.proposals import mutation_draws
from controller_service.spaces import Nb201Space, decode, random_decisions
from nasrl.core.arch import format_arch
from nasrl.core.cell import CellOp


def test_draws_mutate_one_operation_of_a_top_result_and_repeat_for_the_same_key() -> None:
    space = Nb201Space()
    rng = random.Random(0)
    top = [format_arch(decode(space, random_decisions(space, rng, 0))) for _ in range(3)]
    draws = mutation_draws(space, 7, 8, top, 40, 0)
    assert len(draws) == 8 and all(d.decisions["explore"] for d in draws)
    for d in draws:
        assert d.arch.cell is not None
        ops = d.arch.cell.ops
        parents = [p for p in top if _changed(p, ops) == 1]
        assert parents, f"{format_arch(d.arch)} is not one change from a top-3 result"
    again = mutation_draws(space, 7, 8, top, 40, 0)
    assert [format_arch(d.arch) for d in again] == [format_arch(d.arch) for d in draws]
    other = mutation_draws(space, 7, 8, top, 41, 0)
    assert [format_arch(d.arch) for d in other] != [format_arch(d.arch) for d in draws]


def _changed(parent: str, ops: tuple[CellOp, ...]) -> int:
    from nasrl.core.arch import parse

    cell = parse(parent).cell
    assert cell is not None
    return sum(a != b for a, b in zip(cell.ops, ops))


def test_mutations_are_the_default_and_a_search_stored_before_keeps_uniform_draws() -> None:
    """New searches explore by mutation; a search stored before ``draws`` existed (or before
    the convergence rule did) reloads with the uniform draws it was created with, so a
    restarted controller proposes what it would have."""
    from controller_service.spec import SearchSpec

    spec = SearchSpec(agent="random").validate()
    assert (spec.convergence.draws, spec.convergence.patience) == ("mutations", 100)
    assert SearchSpec.from_json(spec.to_json()).convergence == spec.convergence
    stored = spec.to_json()
    stored["convergence"] = {"patience": 100, "action": "explore"}  # as written before draws
    assert SearchSpec.from_json(stored).convergence.draws == "uniform"
    del stored["convergence"]  # as written before the convergence rule
    assert SearchSpec.from_json(stored).convergence.draws == "uniform"
