"""The controller's priors outside the agents, for bench/nb201.py's replay of the
NAS-Bench-201 protocol: screening by the learned predictor (``controller_service.screen_model``
with the controller's defaults: unscreened for the first 10 results, then of ``factor``
proposals per child the new one with the best UCB is trained, refitted every 10 results) and
the convergence rule (after 100 known proposals of the agent in a row, a child whose proposals
were all known is followed by an exploration cell: a uniformly random one, or with ``mutate``
K, one decision changed in one of the K best cells found so far — the controller's default,
K = 5 — falling back to the uniform draw when no mutation is new; with the predictor, the
best-predicted new one of ``factor`` draws). The same decisions as the controller and
bench/replay/replay.py, on the CSV's rows (seeded by the run's own progress)."""

from __future__ import annotations

from typing import Any

from bench.replay.replay import Refits
from controller_service.agents import Proposal
from controller_service.spec_parts import Convergence, Screening
from controller_service.store.rows import Trained

__all__ = ["CellPriors"]


class CellPriors:
    """``group(agent, known)``: the proposals to replay for the next child; ``learnt(i, reward)``
    records a new result (the predictor's training data, in order)."""

    def __init__(self, table: Any, seed: int, factor: int, explore: bool, mutate: int = 0) -> None:
        self.table, self.seed, self.mutate = table, seed, mutate
        self.screening = Screening("predictor", factor=factor) if factor else None
        self.refits = Refits(self.screening, table.space, seed)
        self.patience = Convergence().patience if explore else 0
        self.trained: list[Trained] = []
        self.streak = 0
        self._sizes: dict[int, tuple[int, int]] = {}

    def sizes(self, i: int) -> tuple[int, int]:
        """(params, FLOPs) of row ``i`` as the controller computes them (CIFAR-10's input)."""
        if i not in self._sizes:
            from nasrl.core.arch import parse
            from nasrl.core.datasets import input_shape
            from nasrl.core.shapes import analyze

            a = analyze(parse(self.table.cells[i]), input_shape("cifar10"))
            self._sizes[i] = (a.params, a.flops)
        return self._sizes[i]

    def learnt(self, i: int, reward: float) -> None:
        from nasrl.core.arch import canonical, format_arch, parse

        text = format_arch(canonical(parse(self.table.cells[i])))
        self.trained.append(Trained(text, *self.sizes(i), reward))

    def group(self, agent: Any, known: set[str]) -> list[Proposal]:
        """The agent's proposals for one child: the known ones (learnt again, free) and the
        best-predicted new one; then, if none was new and the agent is converged, an
        exploration cell."""
        table = self.table
        due = bool(self.patience) and self.streak >= self.patience
        model = self.refits.model(self.trained) if self.screening is not None else None
        per = self.screening.factor if model is not None and self.screening else 1
        if model is not None:  # the agent's model-based steps (reinforce's model_steps)
            agent.dream(self._predict(model), model.size)
        out: list[Proposal] = []
        fresh: dict[str, tuple[int, Proposal]] = {}
        for p in agent.sample(per):
            i = table.index(p.decisions["path"])
            if table.hashes[i] in known:
                out.append(p)
                self.streak += 1
            elif table.hashes[i] not in fresh:
                fresh[table.hashes[i]] = (i, p)
        if fresh:
            self.streak = 0
            rows = list(fresh.values())
            out.append(rows[0][1] if model is None else self._best(model, rows))
        elif due:
            out.append(self._explore(model, known))
        return out

    def _predict(self, model: Any) -> Any:
        """``Agent.dream``'s ``predict``: the model's reward of each proposed cell."""

        def predict(proposals: list[Proposal]) -> list[float | None]:
            rows = [self.table.index(p.decisions["path"]) for p in proposals]
            return list(model.rewards([p.arch for p in proposals], [self.sizes(i) for i in rows]))

        return predict

    def _explore(self, model: Any, known: set[str]) -> Proposal:
        """The exploration proposal: of the mutation draws (with ``mutate``), else of the
        uniform ones, the first new cell — with the predictor, the best-predicted new one of
        ``factor`` draws; when no draw is new, the first uniform one."""
        from controller_service.agents.proposals import exploration_draws, mutation_draws

        table, key = self.table, (len(self.trained), self.streak)
        per = self.screening.factor if model is not None and self.screening else 1
        parents = []
        if self.mutate:  # the best cells, ties in the order found (the store's order)
            best = sorted(self.trained, key=lambda r: -r.reward)[: self.mutate]
            parents = [r.arch for r in best]
        uniform = exploration_draws(table.space, self.seed, 1 if parents else per, *key)
        tiers = [uniform]
        if parents:
            tiers.insert(0, mutation_draws(table.space, self.seed, per, parents, *key))
        for draws in tiers:
            fresh: dict[str, tuple[int, Proposal]] = {}
            for p in draws:
                i = table.index(p.decisions["path"])
                if table.hashes[i] not in known:
                    fresh.setdefault(table.hashes[i], (i, p))
            if fresh:
                rows = list(fresh.values())
                return rows[0][1] if model is None else self._best(model, rows)
        return uniform[0]

    def _best(self, model: Any, rows: list[tuple[int, Proposal]]) -> Proposal:
        """The best-predicted of new cells (row, proposal); the first of equals."""
        values = model.values([p.arch for _, p in rows], [self.sizes(i) for i, _ in rows])
        return rows[max(range(len(rows)), key=lambda k: values[k])][1]
