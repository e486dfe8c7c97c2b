"""A search's budget: how many more children may be proposed, and when it is done."""

from __future__ import annotations

from controller_service.spec import SearchSpec
from controller_service.states import TRAINING, SearchState, Status
from controller_service.store import Store

__all__ = [
    "MAX_ROUND",
    "MAX_SAMPLES_PER_BUDGET",
    "spent",
    "recorded",
    "room",
    "final_left",
    "settle",
]

MAX_ROUND = 256  # proposals prepared per transaction of one Sample
MAX_SAMPLES_PER_BUDGET = 50  # guards against an agent that only re-proposes known networks


def spent(counts: dict[str, int]) -> int:
    """Children that took a unit of the budget (trained, in training or failed)."""
    return sum(counts.get(s, 0) for s in TRAINING)


def recorded(counts: dict[str, int]) -> int:
    """Candidates recorded (every status; a reissue is not a new one)."""
    return sum(v for k, v in counts.items() if k != "reissued")


def room(spec: SearchSpec, counts: dict[str, int]) -> int:
    """How many more children may be proposed now, given the search's ``counts``: the budget
    not yet spent, and at most MAX_SAMPLES_PER_BUDGET proposals per budget unit in all; at
    most MAX_ROUND at once."""
    left = min(spec.budget - spent(counts), spec.budget * MAX_SAMPLES_PER_BUDGET - recorded(counts))
    return max(0, min(left, max(1, MAX_ROUND // max(1, spec.screening.factor))))


def final_left(store: Store, search_id: str, spec: SearchSpec) -> int:
    """How many networks a SHARED search's top-k stage has still to hand out for full
    training: ``top_k`` less those handed out, at most the networks scored under shared
    weights and not handed out yet (0 for a FULL search, or without a top-k stage)."""
    top_k = spec.evaluation.top_k if spec.evaluation.shared else 0
    if top_k == 0:
        return 0
    left = top_k - store.final_count(search_id)
    return min(left, store.untaken_shared_count(search_id)) if left > 0 else 0


def settle(store: Store, search_id: str, spec: SearchSpec) -> bool:
    """Mark the search done when nothing is in flight and no more may be proposed (in a
    SHARED search: nor handed out by its top-k stage)."""
    counts = store.counts(search_id)
    if (
        counts.get(Status.LEASED, 0) == 0
        and room(spec, counts) == 0
        and final_left(store, search_id, spec) == 0
    ):
        store.set_search_state(search_id, SearchState.DONE)
        return True
    return False
