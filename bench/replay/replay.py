"""One replayed search: ``Job`` says which (agent, seed, arm), ``Run`` records its
best-so-far curve, ``replay_agent`` drives a nasrl agent exactly as the controller does
(``agent.sample``, then ``agent.update(decisions, reward)`` with the agent's default reward)
but answers every proposal from the table, and ``replay_tpe`` does the same for Optuna TPE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.replay.lookup import Lookup, lookup, scores
from controller_service.store.rows import Trained
from nasrl.core.presets import PRESETS

__all__ = [
    "BUDGET_SETTINGS",
    "Refits",
    "Job",
    "Run",
    "Evaluator",
    "agent_settings",
    "proxy_priors",
    "replay_agent",
    "replay_tpe",
    "run_job",
]

BUDGET_SETTINGS: dict[str, dict[str, Any]] = {
    "reinforce": {"learning_rate": 0.012, "batch": 4},
    "qlearning": {"schedule_scale": -1.0},  # filled in per run: a third of the budget at 1.0
}


@dataclass(frozen=True)
class Job:
    """One run to replay. ``variant`` names its arm in the report (paper, budget, warm,
    warm+RULE, SCORExFACTOR, max_params N); the agent takes the budget settings only in
    ``budget``, its defaults otherwise. ``warm`` = (proxy table, proxy evaluations, top):
    start as the controller's warm start does. ``screen`` = (score, factor, scores file of
    bench/screening.py; score "predictor" or "predictor/SCORE": the controller's predictor
    screening with its defaults, cold start without screening or by SCORE): as the controller's
    screening. ``explore``: the controller's convergence rule (explore). ``model_steps``: the
    agent's model-based steps (with predictor screening). ``max_params``: as the controller's
    parameter limit. ``budget_seconds``: end the run at this many trainer-seconds."""

    table: str
    agent: str
    seed: int
    evaluations: int
    variant: str = "paper"
    stopping: str = "none"
    budget_seconds: float | None = None
    warm: tuple[str, int, int] | None = None
    screen: tuple[str, int, str] | None = None
    max_params: int = 0
    explore: bool = False
    model_steps: int = 0
    mutate: int = 0  # the convergence rule's draws: mutations of the best ``mutate`` (0: uniform)
    patience: int = 0  # the convergence rule's patience (0: 20 with ``mutate``, else its default)

    @property
    def settings(self) -> dict[str, Any]:
        """The agent's settings: the budget ones in the ``budget`` arm, its ``efficient``
        preset in the ``efficient`` arm, else its defaults."""
        base = self.variant.split("+")[0]  # "efficient+predictor": the efficient preset's
        variant = base if base in ("budget", "efficient") else "paper"
        settings = agent_settings(self.agent, variant, self.evaluations)
        if self.model_steps:
            settings["model_steps"] = self.model_steps
        return settings

    @property
    def convergence_patience(self) -> int:
        """The convergence rule's patience in this arm: ``patience``, else 20 with ``mutate``
        (the ``predictor+mutate`` arm), else the controller's default."""
        from controller_service.spec_parts import Convergence

        return self.patience or (MUTATE_PATIENCE if self.mutate else Convergence.patience)


@dataclass
class Run:
    agent: str
    seed: int
    best: list[float] = field(default_factory=list)  # best-so-far validation per evaluation
    test: list[float] = field(default_factory=list)  # test accuracy of that best network
    seconds: list[float] = field(default_factory=list)  # cumulative trainer-seconds
    cached: int = 0
    proposals: int = 0
    screened: int = 0  # new proposals screened out (recorded by the controller, not evaluated)
    stopped: int = 0
    stalled: bool = False
    proxy_seconds: float = 0.0  # warm start: trainer-seconds of the proxy search
    trained: list[Trained] = field(default_factory=list)  # new results, in order (predictor)

    def record(self, validation: float, test: float, seconds: float) -> None:
        if not self.best or validation > self.best[-1]:  # ties keep the first
            self.best.append(validation)
            self.test.append(test)
        else:
            self.best.append(self.best[-1])
            self.test.append(self.test[-1])
        self.seconds.append((self.seconds[-1] if self.seconds else 0.0) + seconds)

    def at(self, n: int) -> tuple[float, float] | None:
        if len(self.best) < n:
            return None
        return self.best[n - 1], self.test[n - 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "seed": self.seed,
            "best": self.best,
            "test": self.test,
            "seconds": self.seconds,
            "cached": self.cached,
            "proposals": self.proposals,
            "stopped": self.stopped,
            "stalled": self.stalled,
            "proxy_seconds": self.proxy_seconds,
        }


def agent_settings(agent: str, variant: str, evaluations: int) -> dict[str, Any]:
    if variant == "efficient":
        return dict(PRESETS.get(agent, {}).get("efficient", {}))
    if variant != "budget" or agent not in BUDGET_SETTINGS:
        return {}
    settings = dict(BUDGET_SETTINGS[agent])
    if agent == "qlearning":  # the paper spends 1,500 of 2,700 models at epsilon 1
        settings["schedule_scale"] = (evaluations / 3) / 1500
    return settings


class Evaluator:
    """Answers one run's proposals from the table as the controller and runner would: a
    network seen before is free (its stored result is learnt again); a new one "trains"
    epoch by epoch under the early-stopping rule, costing the recorded seconds of the epochs
    it ran. A stopped child's result is its best validation accuracy over the epochs it ran
    (and, for the zoph reward, the max of its last 5 of those), which is what the agent learns;
    its test accuracy is unknown (NaN). The run ends at ``evaluations`` distinct networks or at
    ``budget_seconds`` trainer-seconds, whichever comes first."""

    def __init__(
        self,
        lookup: Lookup,
        run: Run,
        evaluations: int,
        stopping: str,
        budget_seconds: float | None,
        stall: int = 4,
    ) -> None:
        from controller_service.stopping import StoppingSettings, make_rule

        self.lookup, self.run = lookup, run
        self.evaluations, self.budget, self.stall = evaluations, budget_seconds, stall
        epochs = len(next(iter(lookup.primary.values())).validation)
        self.rule = make_rule(StoppingSettings(stopping), epochs)
        self.results: dict[str, tuple[float, float]] = {}  # text -> (validation, last5)

    def done(self) -> bool:
        if self.run.proposals >= self.stall * self.evaluations:
            self.run.stalled = True
            return True
        if self.budget is not None and self.run.seconds and self.run.seconds[-1] >= self.budget:
            return True
        return len(self.run.best) >= self.evaluations

    def __call__(self, arch: Any) -> tuple[float, float]:
        """(validation, last5) that the agent learns for ``arch``."""
        from controller_service.stopping import Decision

        text = self.lookup.text(arch)
        self.run.proposals += 1
        if text in self.results:
            self.run.cached += 1
            return self.results[text]
        row = self.lookup.primary[text]
        child = len(self.results)
        ran = len(row.validation)
        for epoch, accuracy in enumerate(row.validation, start=1):
            if self.rule.decide(child, epoch, accuracy) is Decision.STOP:
                ran = epoch
                break
        curve = row.validation[:ran]
        overhead = max(0.0, row.seconds - sum(row.epoch_seconds))
        seconds = sum(row.epoch_seconds[:ran]) + overhead * ran / len(row.validation)
        stopped = ran < len(row.validation)
        self.run.stopped += stopped
        self.run.record(max(curve), float("nan") if stopped else row.test_accuracy, seconds)
        self.results[text] = (max(curve), max(curve[-5:]))
        return self.results[text]


def proxy_priors(proxy: Lookup, seed: int, evaluations: int, top: int) -> tuple[list[str], float]:
    """A warm start's priors: the ``top`` best networks that a random search of
    ``evaluations`` distinct networks finds on the proxy table (the same space on a cheaper
    dataset), and the trainer-seconds that search cost."""
    import random

    from controller_service.agents.proposals import random_proposal
    from controller_service.spaces import ZophSpace

    # a MetaQNN walk picks its own depth; a Zoph proposal has every layer count up to the most
    layers = proxy.space.max_layers if isinstance(proxy.space, ZophSpace) else 1
    rng = random.Random(1_000_003 + seed)  # not the target run's seed stream
    found: dict[str, float] = {}
    seconds = 0.0
    for _ in range(50 * evaluations):
        if len(found) >= evaluations:
            break
        text = proxy.text(random_proposal(proxy.space, rng, layers).arch)
        if text not in found:
            found[text] = proxy.rows[text][0]
            seconds += proxy.rows[text][3]
    return sorted(found, key=lambda a: -found[a])[:top], seconds


def replay_agent(table: Lookup, job: Job) -> Run:
    """One search by a nasrl agent against the table, with the controller's dedup: a network
    already evaluated in the run is answered from its result (the agent learns it again, no
    evaluation). With ``job.warm`` the agent pre-trains on the priors, which are evaluated
    first; with ``job.screen`` it proposes ``factor`` networks per child, known ones are
    learnt again for free, and of the new ones only the best-scoring is evaluated (the others
    are not learnt from); with ``job.max_params`` bigger proposals are rejected before
    training (no evaluation, learnt as a failure)."""
    import torch

    from controller_service.agents import agent_class

    torch.set_num_threads(1)
    cls = agent_class(job.agent)
    agent = cls(table.space, job.settings, job.seed, job.evaluations)
    zoph_reward = cls.default_reward == "zoph"
    run = Run(job.agent, job.seed)
    # exploring, a converged agent's rounds bring a new network each: only a far longer
    # spell without one is a stall
    stall = 40 if job.explore else 4
    evaluate = Evaluator(table, run, job.evaluations, job.stopping, job.budget_seconds, stall=stall)

    def learn(decisions: dict[str, Any], arch: Any) -> None:
        before = len(evaluate.results)
        validation, last5 = evaluate(arch)
        reward = last5**3 if zoph_reward else validation
        if len(evaluate.results) > before:  # a new result, as the controller records it
            row = table.primary[table.text(arch)]
            run.trained.append(Trained(table.text(arch), row.params, row.flops, reward))
        agent.update(decisions, reward)

    if job.warm is not None:
        _warm_start(table, job, agent, run, evaluate, learn)
    converged = Converged(table, job)
    while not evaluate.done():
        fitted = converged.model(run) if job.screen else None
        if fitted is not None:  # the controller's Sample: learn, then dream, then propose
            agent.dream(converged.predicted(fitted), fitted.size)
        new, due = False, converged.due()
        recorded = run.proposals + run.screened  # the controller's candidates before the group
        for proposal in _proposals(table, job, agent, evaluate, converged.model):
            if job.max_params and table.primary[table.text(proposal.arch)].params > job.max_params:
                run.proposals += 1  # rejected before training: no budget, learnt as a failure
                agent.update(proposal.decisions, None)
                new = True
                continue
            new |= converged.note(table.text(proposal.arch) in evaluate.results)
            learn(proposal.decisions, proposal.arch)
            if evaluate.done():
                break
        explore = (
            None
            if new or not due or evaluate.done()
            else converged.explore(run, recorded, evaluate.results)
        )
        if explore is not None:  # the agent only re-proposes known networks: explore
            learn(explore.decisions, explore.arch)
    return run


def _warm_start(
    table: Lookup, job: Job, agent: Any, run: Run, evaluate: Evaluator, learn: Any
) -> None:
    """The controller's warm start: pre-train on the priors, then evaluate them first."""
    from controller_service.spaces import encode
    from controller_service.spec import WarmStart
    from nasrl.core.arch import parse

    assert job.warm is not None
    proxy, evaluations, top = job.warm
    priors, run.proxy_seconds = proxy_priors(lookup(proxy), job.seed, evaluations, top)
    decisions = [{**encode(table.space, parse(text)), "prior": True} for text in priors]
    d = WarmStart()
    agent.pretrain(decisions, d.pretrain_steps, d.pretrain_learning_rate)
    for text, prior in zip(priors, decisions):
        if evaluate.done():
            break
        learn(prior, parse(text))


def _proposals(table: Lookup, job: Job, agent: Any, evaluate: Evaluator, model: Any) -> list[Any]:
    """The agent's next proposals: one, or with screening the known ones of ``factor`` and the
    best-scoring new one (by the predictor once it has its cold-start results: see
    ``Converged.model``)."""
    rank = _ranker(table, job, evaluate.run, model)
    if rank is None:
        return list(agent.sample(1))
    fresh: dict[str, Any] = {}
    proposals = []
    for p in agent.sample(job.screen[1] if job.screen else 1):
        text = table.text(p.arch)
        if text in evaluate.results:
            proposals.append(p)  # known: answered from the results, learnt again
        elif text not in fresh:
            fresh[text] = p
    if fresh:
        proposals.append(_best(list(fresh.values()), rank))
        evaluate.run.screened += len(fresh) - 1
    return proposals


def _ranker(table: Lookup, job: Job, run: Run, model: Any) -> Any:
    """How the controller ranks a screened group now: the screening values of a list of new
    proposals (by the predictor, or the training-free score of cold start), or None when
    it does not screen."""
    if job.screen is None:
        return None
    score, _, path = job.screen
    fitted = model(run) if score.startswith("predictor") else None
    if score.startswith("predictor") and fitted is None:
        score = score.partition("/")[2]  # the cold-start score, or no screening
        if not score:
            return None
    if fitted is not None:

        def by_model(ps: list[Any]) -> list[float]:
            rows = [table.primary[table.text(p.arch)] for p in ps]
            return list(fitted.values([p.arch for p in ps], [(r.params, r.flops) for r in rows]))

        return by_model
    by_score = scores(path)[score]
    return lambda ps: [by_score[table.text(p.arch)] for p in ps]


def _best(fresh: list[Any], rank: Any) -> Any:
    """The best-ranked of new proposals (the first of equals, as the controller's ``max``)."""
    values = rank(fresh)
    return fresh[max(range(len(values)), key=lambda i: values[i])]


class Refits:
    """A replay's predictor for predictor screening: the model of its first results, refitted
    when ``screen_model.fit_size`` says, as the controller's ``LiveSearch.model`` does."""

    def __init__(self, screening: Any, space: Any, seed: int) -> None:
        self.screening, self.space, self.seed = screening, space, seed
        self.fitted: Any = None

    def model(self, trained: list[Trained]) -> Any:
        from controller_service.screen_model import fit, fit_size

        size = fit_size(self.screening, len(trained))
        if not size:
            return None
        if self.fitted is None or self.fitted.size != size:
            self.fitted = fit(self.screening, self.space, self.seed, trained[:size])
        return self.fitted


class Converged:
    """The controller's two priors outside the agent, replayed: the predictor of predictor
    screening (``model``: refitted on the run's first results as ``screen_model.fit_size``
    says) and the convergence rule (``note``, ``explore``: after ``patience`` known proposals
    in a row, a group that brought nothing new is followed by a uniformly random network)."""

    def __init__(self, table: Lookup, job: Job) -> None:
        from controller_service.spec_parts import Screening

        self.table, self.job = table, job
        factor = job.screen[1] if job.screen else 1
        self.refits = Refits(Screening("predictor", factor=factor), table.space, job.seed)
        self.patience = job.convergence_patience * job.explore
        self.streak = 0

    def model(self, run: Run) -> Any:
        return self.refits.model(run.trained)

    def predicted(self, fitted: Any) -> Any:
        """``Agent.dream``'s ``predict`` from the table's sizes (None over ``max_params``)."""

        def predict(proposals: list[Any]) -> list[float | None]:
            rows = [self.table.primary[self.table.text(p.arch)] for p in proposals]
            values = fitted.rewards(
                [p.arch for p in proposals], [(r.params, r.flops) for r in rows]
            )
            limit = self.job.max_params
            return [None if limit and r.params > limit else v for r, v in zip(rows, values)]

        return predict

    def note(self, known: bool) -> bool:
        """Count one of the agent's proposals; True when it was new."""
        self.streak = self.streak + 1 if known else 0
        return not known

    def due(self) -> bool:
        """Whether the agent is converged (before a group: the controller decides then)."""
        return bool(self.patience) and self.streak >= self.patience

    def explore(self, run: Run, recorded: int, known: dict[str, Any]) -> Any:
        """The exploration proposal: a uniform draw; while screening, the best-ranked new one
        of ``factor`` draws (over ``max_params`` or ``known``: not new), else the first."""
        from controller_service.agents.proposals import exploration_draws, mutation_draws

        job = self.job
        rank = _ranker(self.table, job, run, self.model)
        per = job.screen[1] if job.screen and rank is not None else 1
        space, parents = self.table.space, []
        if job.mutate:  # the best results, ties in the order recorded (the store's order)
            parents = [r.arch for r in sorted(run.trained, key=lambda r: -r.reward)[: job.mutate]]
        uniform = exploration_draws(space, job.seed, 1 if parents else per, recorded, 0)
        tiers = [uniform]
        if parents:
            tiers.insert(0, mutation_draws(space, job.seed, per, parents, recorded, 0))
        for draws in tiers:
            fresh: dict[str, Any] = {}
            for p in draws:
                text = self.table.text(p.arch)
                over = job.max_params and self.table.primary[text].params > job.max_params
                if text not in known and not over:
                    fresh.setdefault(text, p)
            if fresh:
                return _best(list(fresh.values()), rank) if rank else next(iter(fresh.values()))
        return uniform[0]


#: the ``predictor+mutate`` arm's convergence rule (``--converged-after 20 --explore-by
#: mutations``, top 5)
MUTATE_PATIENCE = 20


def replay_tpe(table: Lookup, job: Job) -> Run:
    """Optuna TPE over the Zoph decisions against the table, with the same dedup."""
    import optuna

    from bench.efficiency.tpe import zoph_trial
    from controller_service.spaces import ZophSpace

    space = table.space
    assert isinstance(space, ZophSpace), "tpe runs on Zoph tables only"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=job.seed)
    )
    run = Run("tpe", job.seed)
    evaluate = Evaluator(table, run, job.evaluations, job.stopping, job.budget_seconds)
    while not evaluate.done():
        trial = study.ask()
        validation, _ = evaluate(zoph_trial(trial, space))
        study.tell(trial, validation)
    return run


def run_job(job: Job) -> dict[str, Any]:
    """Replay ``job`` (in a worker process): its run as JSON."""
    table = lookup(job.table)
    run = replay_tpe(table, job) if job.agent == "tpe" else replay_agent(table, job)
    return run.to_json()
