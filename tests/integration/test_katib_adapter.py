"""The Katib Suggestion adapter, driven by a Katib-shaped client built from the written proto:
an experiment of 12 trials, 3 in parallel, trials succeeded / failed / early-stopped, the
adapter killed with kill -9 and restarted mid-way — it goes on without repeating an
architecture, and every reported trial reaches the nasrl search exactly once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.katib_client import Katib, experiment
from nasrl.cli.local import LocalService
from nasrl.core.arch import parse
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient
from protos import katib_api_pb2 as kpb

SETTINGS = {"agent": "reinforce", "dataset": "digits", "max_layers": "3", "epochs": "1"}


@pytest.fixture()
def adapter(controller: str, tmp_path) -> Iterator[LocalService]:
    service = LocalService("katib_adapter", ["--controller", controller], log_dir=tmp_path)
    with service:
        yield service
        if service.process is not None and service.process.poll() is not None:
            print(f"the adapter exited with {service.process.returncode}:\n{service.log()}")


def _accuracy(text: str) -> float:
    """A deterministic stand-in for what a trial container would measure."""
    return 0.5 + int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 450 / 1000


def _run_trial(katib: Katib, i: int, trial: kpb.Trial) -> None:
    acc = _accuracy(katib.assigned(trial))
    if i % 4 == 1:
        katib.finish(trial, kpb.TrialStatus.FAILED)
    elif i % 4 == 2:
        katib.finish(trial, kpb.TrialStatus.EARLYSTOPPED, accuracy=acc * 0.8)
    else:
        katib.finish(trial, kpb.TrialStatus.SUCCEEDED, accuracy=acc, test_accuracy=acc - 0.01)


def test_twelve_trials_three_parallel_across_a_kill_9(
    adapter: LocalService, controller: str
) -> None:
    katib = Katib(adapter.target, experiment("nas-digits", 12, 3, SETTINGS))
    katib.stub().ValidateAlgorithmSettings(
        kpb.ValidateAlgorithmSettingsRequest(experiment=katib.exp), timeout=30
    )
    finished = 0
    replayed = None
    while finished < 12:
        room = min(3 - len(katib.running()), 12 - len(katib.trials))
        if room:
            assert len(katib.suggest(room)) == room
        _run_trial(katib, finished, katib.running()[0])
        finished += 1
        if finished == 6:  # kill -9 mid-way; Katib's next call reaches a fresh process
            before = katib.request(1)
            first = katib.stub().GetSuggestions(before, timeout=60)
            adapter.kill()
            adapter.restart()
            replayed = (first, katib.stub().GetSuggestions(before, timeout=60))
    katib.stub().GetSuggestions(katib.request(0), timeout=60)  # report the last trials

    texts = [katib.assigned(t) for t in katib.trials]
    assert len(texts) == 12 and len(set(texts)) == 12, "an architecture was repeated"
    for text in texts:
        assert len(parse(text).layers) <= 3
    # a call repeated after the restart (its reply lost) gets the same candidate
    assert replayed is not None and replayed[0] == replayed[1]
    with ControllerClient(controller) as c:
        (search,) = [s for s in c.list_searches() if s.name == "katib:nas-digits"]
        board = {e.architecture: e for e in c.leaderboard(search.search_id, top=100)}
    assert search.spec.agent == "reinforce" and search.spec.budget == 12
    assert search.counts.failed == 3 and search.counts.evaluated == 9
    for i, trial in enumerate(katib.trials):
        text = katib.assigned(trial)
        if i % 4 == 1:
            assert text not in board
        else:
            expected = _accuracy(text) * (0.8 if i % 4 == 2 else 1.0)
            assert board[text].accuracy == pytest.approx(expected, abs=1e-6)


def test_nas_config_gets_enas_style_json_beside_the_text_form(
    adapter: LocalService, controller: str
) -> None:
    nas = kpb.NasConfig(
        graph_config=kpb.GraphConfig(num_layers=4, input_sizes=[8, 8, 1], output_sizes=[10])
    )
    op = nas.operations.operation.add(operation_type="convolution")
    for name, values in (
        ("filter_size", ["3", "5"]),
        ("num_filter", ["16", "32"]),
        ("stride", ["1", "2"]),
    ):
        op.parameter_specs.parameters.add(
            name=name, parameter_type=kpb.CATEGORICAL, feasible_space=kpb.FeasibleSpace(list=values)
        )
    exp = experiment("enas-style", 4, 2, {"agent": "random", "dataset": "digits"}, nas)
    exp.spec.parameter_specs.parameters.add(name="architecture")
    exp.spec.parameter_specs.parameters.add(name="nn_config")
    katib = Katib(adapter.target, exp)
    (trial, _) = katib.suggest(2)
    text = katib.assigned(trial)
    layers = json.loads(katib.assigned(trial, "architecture"))
    config = json.loads(katib.assigned(trial, "nn_config"))
    assert config["num_layers"] == 4 and config["input_sizes"] == [8, 8, 1]
    assert config["output_sizes"] == [10] and len(config["embedding"]) == 2 * 2 * 2 * 2 * 2
    arch = parse(text)
    assert len(layers) == len(arch.layers)
    for i, (row, layer) in enumerate(zip(layers, arch.layers)):
        params = config["embedding"][str(row[0])]["opt_params"]
        assert params["num_filter"] == str(layer.op.filters)  # type: ignore[union-attr]
        assert len(row) == 1 + i


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda e: setattr(e.spec.objective, "type", kpb.MINIMIZE), "set objective.type: maximize"),
        (
            lambda e: e.spec.algorithm.algorithm_settings.add(name="agent", value="genetic"),
            "agent='genetic'; use one of reinforce, qlearning, random, evolution",
        ),
        (
            lambda e: e.spec.algorithm.algorithm_settings.add(name="lr", value="1"),
            "unknown algorithm setting 'lr'",
        ),
        (lambda e: setattr(e.spec.algorithm, "algorithm_name", "enas"), "algorithmName: nasrl"),
        (lambda e: e.spec.parameter_specs.parameters.add(name="lr"), "parameter(s) lr cannot be"),
        (
            lambda e: e.spec.nas_config.operations.operation.add(operation_type="reduction"),
            "may only be operationType: convolution (got reduction)",
        ),
    ],
)
def test_bad_settings_are_invalid_argument(adapter: LocalService, change, fragment: str) -> None:
    exp = experiment("bad", 4, 1, {})
    change(exp)
    katib = Katib(adapter.target, exp)
    for call in (
        lambda: katib.stub().ValidateAlgorithmSettings(
            kpb.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30
        ),
        lambda: katib.suggest(1),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fragment in (err.value.details() or "")


def test_a_dataset_that_is_not_built_in_needs_its_shape(adapter: LocalService) -> None:
    katib = Katib(adapter.target, experiment("imagenet", 4, 1, {"dataset": "imagenet"}))
    with pytest.raises(grpc.RpcError) as err:
        katib.suggest(1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dataset 'imagenet' is not built in" in (err.value.details() or "")


def test_health_answers_the_name_katib_probes(adapter: LocalService) -> None:
    with rpc.channel(adapter.target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("manager.v1beta1.Suggestion", "api.v1.beta1.Suggestion", ""):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_trial_command_prints_what_katib_collects(trainer: str) -> None:
    """deploy/katib's trial command: nasrl train --katib prints name=value lines that Katib's
    StdOut collector parses, and the adapter turns them into a full result."""
    import re

    from katib_adapter.trials import update_for
    from tests.helpers import nasrl_cli

    run = nasrl_cli(
        "train", "C(8,3,1) GAP", "--trainer", trainer, "--epochs", "1", "--quiet", "--katib"
    )
    assert run.returncode == 0, run.stderr
    # Katib's default metrics-collector format
    metrics = dict(re.findall(r"([\w|-]+)\s*=\s*([+-]?\d*(?:\.\d+)?(?:[Ee][+-]?\d+)?)", run.stdout))
    assert set(metrics) == {"accuracy", "test_accuracy", "params", "flops", "seconds"}
    trial = kpb.Trial(name="t")
    trial.spec.labels["nasrl-candidate"] = "7"
    Katib.finish(trial, kpb.TrialStatus.SUCCEEDED, **{k: float(v) for k, v in metrics.items()})
    update = update_for(trial, "s", "accuracy")
    assert update is not None and update.candidate_id == 7
    assert update.result.validation_accuracy == pytest.approx(float(metrics["accuracy"]))
    assert update.result.params == int(float(metrics["params"])) > 0


def _experiment_from_yaml(doc: dict) -> kpb.Experiment:  # type: ignore[type-arg]
    """deploy/katib's Experiment YAML as Katib's manager sends it over gRPC."""
    spec = doc["spec"]
    exp = experiment(
        doc["metadata"]["name"],
        spec["maxTrialCount"],
        spec["parallelTrialCount"],
        {s["name"]: s["value"] for s in spec["algorithm"]["algorithmSettings"]},
    )
    del exp.spec.parameter_specs.parameters[:]
    for p in spec.get("parameters", []):
        exp.spec.parameter_specs.parameters.add(name=p["name"])
    for p in spec["trialTemplate"]["trialParameters"]:
        if p["reference"] not in {q.name for q in exp.spec.parameter_specs.parameters}:
            exp.spec.parameter_specs.parameters.add(name=p["reference"])
    if "nasConfig" in spec:
        graph = spec["nasConfig"]["graphConfig"]
        exp.spec.nas_config.graph_config.CopyFrom(
            kpb.GraphConfig(
                num_layers=graph["numLayers"],
                input_sizes=graph["inputSizes"],
                output_sizes=graph["outputSizes"],
            )
        )
        for op in spec["nasConfig"]["operations"]:
            o = exp.spec.nas_config.operations.operation.add(operation_type=op["operationType"])
            for p in op["parameters"]:
                o.parameter_specs.parameters.add(
                    name=p["name"],
                    feasible_space=kpb.FeasibleSpace(list=p["feasibleSpace"]["list"]),
                )
    return exp


@pytest.mark.parametrize("name", ["experiment.yaml", "experiment-nas-config.yaml"])
def test_the_example_experiments_are_valid_and_their_trials_run_nasrl_train(
    adapter: LocalService, name: str
) -> None:
    from pathlib import Path

    import yaml

    doc = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "katib" / name).read_text())
    exp = _experiment_from_yaml(doc)
    katib = Katib(adapter.target, exp)
    katib.stub().ValidateAlgorithmSettings(
        kpb.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30
    )
    (trial,) = katib.suggest(1)
    parse(katib.assigned(trial))
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["command"][:2] == ["nasrl", "train"] and "--katib" in container["command"]


def test_a_candidate_label_beyond_int64_is_invalid_argument(adapter: LocalService) -> None:
    """A trial whose nasrl-candidate label is a number no candidate id can be (10**30, beyond
    int64) is refused with a sentence naming the trial and the label, not UNKNOWN."""
    katib = Katib(adapter.target, experiment("huge-label", 4, 1, SETTINGS))
    (trial,) = katib.suggest(1)
    trial.spec.labels["nasrl-candidate"] = str(10**30)
    Katib.finish(trial, kpb.TrialStatus.SUCCEEDED, accuracy=0.5)
    with pytest.raises(grpc.RpcError) as err:
        katib.stub().GetSuggestions(katib.request(1), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert f"trial {trial.name!r}" in details, details
    assert f"label nasrl-candidate='{10**30}'" in details, details
    assert "whole number from 0 to" in details, details
