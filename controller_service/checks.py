"""What one Sample call knows about its proposals: each proposal's hash and canonical text
(computed once), and per round the checks done before the write transaction — its shape
(or why the dataset's input rules it out), why it breaks the constraints, its stored result
or in-flight twin and, in screened groups, its screening score."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from controller_service.agents import Proposal
from controller_service.screen_model import Fitted
from controller_service.spec import SearchSpec
from controller_service.store import CandidateRow, ResultRow, Store
from nasrl.core.arch import ArchError, hashed
from nasrl.core.scoring import score as screen_score
from nasrl.core.shapes import Analysis, analyze

__all__ = ["Check", "Checks"]


@dataclass(frozen=True)
class Check:
    """A proposal's checks done before the transaction: its shape (None: ``invalid`` says
    why it does not fit the input), why it breaks the constraints (``rejected``), its result
    if evaluated (``known``), its in-flight twin and, when screened, its score."""

    size: Analysis | None
    invalid: str | None
    rejected: str | None = None
    known: ResultRow | None = None
    twin: CandidateRow | None = None
    score: float | None = None

    @property
    def new(self) -> bool:
        """Valid, within the limits, not evaluated and not in flight (when checked)."""
        return (
            self.size is not None
            and self.rejected is None
            and self.known is None
            and self.twin is None
        )


class Checks:
    """The checks of one Sample call (under the search's lock, so only the call itself
    changes what they found: a network it records is looked up again)."""

    def __init__(self, store: Store, spec: SearchSpec, search_id: str) -> None:
        self.store, self.spec, self.search_id = store, spec, search_id
        self._keys: dict[int, tuple[Proposal, str, str]] = {}
        self._round: dict[str, Check] = {}
        self._recorded: set[str] = set()

    def key(self, p: Proposal) -> tuple[str, str]:
        """``arch_hash`` and canonical text of a proposal of this call, computed once."""
        found = self._keys.get(id(p))
        if found is None or found[0] is not p:
            found = self._keys[id(p)] = (p, *hashed(p.arch))
        return found[1], found[2]

    def digest(self, p: Proposal) -> str:
        return self.key(p)[0]

    def __getitem__(self, p: Proposal) -> Check:
        """The checks of a proposal of the current round."""
        return self._round[self.digest(p)]

    def run(
        self, proposals: Iterable[tuple[Proposal, bool]], score: str, model: Fitted | None
    ) -> None:
        """A new round: check every ``(proposal, screened)`` and score the screened ones that
        are new (``score``: the screening score's name, "predictor" with ``model``)."""
        spec, store, search_id = self.spec, self.store, self.search_id
        image = spec.image()
        out: dict[str, Check] = {}
        to_score: dict[str, Proposal] = {}
        for p, screened in proposals:
            digest = self.digest(p)
            if digest in out:
                continue
            try:
                size = analyze(p.arch, image)
            except ArchError as exc:  # the space allows it, the dataset's input does not
                out[digest] = Check(None, str(exc))
                continue
            why = spec.constraints.violation(size.params, size.flops)
            if why is not None:
                out[digest] = Check(size, None, why)
                continue
            known = store.result(search_id, digest)
            twin = None if known else store.in_flight_with_hash(search_id, digest)
            out[digest] = Check(size, None, None, known, twin)
            if screened and known is None and twin is None:
                to_score[digest] = p
        self._round = out
        values = self.scores(score, model, list(to_score.values()))
        for digest, value in zip(to_score, values):
            out[digest] = dataclasses.replace(out[digest], score=value)

    def scores(self, score: str, model: Fitted | None, proposals: list[Proposal]) -> list[float]:
        """The screening score of each checked proposal (by the predictor: in one batch)."""
        if score != "predictor":
            image = self.spec.image()
            return [screen_score(score, p.arch, image) for p in proposals]
        assert model is not None
        sizes = []
        for p in proposals:
            size = self[p].size
            assert size is not None
            sizes.append((size.params, size.flops))
        return model.values([p.arch for p in proposals], sizes)

    def lookup(self, p: Proposal) -> tuple[ResultRow | None, CandidateRow | None]:
        """The proposal's stored result and in-flight twin, now."""
        check, digest = self[p], self.digest(p)
        if digest not in self._recorded:
            return check.known, check.twin
        known = self.store.result(self.search_id, digest)  # this call recorded it since
        return known, None if known else self.store.in_flight_with_hash(self.search_id, digest)

    def recorded(self, p: Proposal) -> None:
        """This call recorded the proposal as a candidate."""
        self._recorded.add(self.digest(p))
