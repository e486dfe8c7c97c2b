"""A Katib-shaped client built from protos/katib_api.proto, for the adapter's tests and bench:
it does what Katib's experiment controller does with a suggestion service —
ValidateAlgorithmSettings once, then GetSuggestions with every trial so far whenever it has
room for new trials."""

from __future__ import annotations

from dataclasses import dataclass, field

from nasrl.rpc import rpc
from protos import katib_api_pb2 as kpb
from protos import katib_api_pb2_grpc as kpb_grpc

ARCH = "nasrl_architecture"


def experiment(
    name: str,
    max_trials: int = 12,
    parallel: int = 3,
    settings: dict[str, str] | None = None,
    nas: kpb.NasConfig | None = None,
) -> kpb.Experiment:
    spec = kpb.ExperimentSpec(
        objective=kpb.ObjectiveSpec(type=kpb.MAXIMIZE, objective_metric_name="accuracy"),
        algorithm=kpb.AlgorithmSpec(
            algorithm_name="nasrl",
            algorithm_settings=[
                kpb.AlgorithmSetting(name=k, value=v) for k, v in (settings or {}).items()
            ],
        ),
        parallel_trial_count=parallel,
        max_trial_count=max_trials,
    )
    spec.parameter_specs.parameters.add(
        name=ARCH, parameter_type=kpb.CATEGORICAL, feasible_space=kpb.FeasibleSpace(list=["nasrl"])
    )
    if nas is not None:
        spec.nas_config.CopyFrom(nas)
    return kpb.Experiment(name=name, spec=spec)


@dataclass
class Katib:
    target: str
    exp: kpb.Experiment
    trials: list[kpb.Trial] = field(default_factory=list)
    total: int = 0

    def stub(self) -> kpb_grpc.SuggestionStub:
        return kpb_grpc.SuggestionStub(rpc.channel(self.target))

    def request(self, n: int) -> kpb.GetSuggestionsRequest:
        return kpb.GetSuggestionsRequest(
            experiment=self.exp,
            trials=self.trials,
            current_request_number=n,
            total_request_number=self.total + n,
        )

    def suggest(self, n: int) -> list[kpb.Trial]:
        """Ask for ``n`` trials and create them, as Katib does."""
        reply = self.stub().GetSuggestions(self.request(n), timeout=60)
        self.total += n
        new = []
        for a in reply.parameter_assignments:
            trial = kpb.Trial(name=f"{self.exp.name}-{len(self.trials) + 1:03d}")
            trial.spec.parameter_assignments.assignments.extend(a.assignments)
            trial.spec.labels.update(a.labels)
            trial.status.condition = kpb.TrialStatus.RUNNING
            self.trials.append(trial)
            new.append(trial)
        return new

    def running(self) -> list[kpb.Trial]:
        return [t for t in self.trials if t.status.condition == kpb.TrialStatus.RUNNING]

    @staticmethod
    def finish(trial: kpb.Trial, condition: int, **metrics: float) -> None:
        trial.status.condition = condition  # type: ignore[assignment]
        for name, value in metrics.items():
            trial.status.observation.metrics.add(name=name, value=repr(value))

    @staticmethod
    def assigned(trial: kpb.Trial, name: str = ARCH) -> str:
        return next(a.value for a in trial.spec.parameter_assignments.assignments if a.name == name)
