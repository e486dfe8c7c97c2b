"""One settings schema per agent (nasrl.core.agent_settings): the registry agrees with AGENTS, the
proto messages have the dataclasses' fields, every setting survives dataclass -> proto ->
dataclass -> JSON -> dataclass, the one validator names the setting and its range, stored
searches load, and the CLI's agent choices come from the registry."""

from __future__ import annotations

import json
import math
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from google.protobuf.descriptor import FieldDescriptor

from controller_service.agents import AGENTS, DEFAULT_SPACE
from controller_service.spec import SearchSpec, SpecError, named_space
from nasrl.cli.commands import build_parser
from nasrl.core import codec
from nasrl.core.agent_settings import (
    AGENT_SETTINGS,
    AgentSettings,
    AgentSettingsError,
    EvolutionSettings,
    QLearningSettings,
    RandomSettings,
    ReinforceSettings,
    kind,
    setting_infos,
)
from nasrl.core.datasets import input_shape
from nasrl.core.setting_text import parse_assignments
from protos import controller_pb2 as cpb

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(AGENTS)
PROTO_KINDS = {
    bool: {FieldDescriptor.TYPE_BOOL},
    int: {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64},
    float: {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE},
}


def settings_message(agent: str) -> Any:
    """The descriptor of the agent's message in AgentSpec's ``settings`` oneof."""
    oneof = cpb.AgentSpec.DESCRIPTOR.oneofs_by_name["settings"]
    by_name = {f.name: f for f in oneof.fields}
    assert agent in by_name, f"AgentSpec.settings has no field {agent!r}"
    return by_name[agent].message_type


# ---------------------------------------------------------------------------- registry


def test_agents_and_settings_registry_agree() -> None:
    assert list(AGENT_SETTINGS) == ["reinforce", "qlearning", "random", "evolution"]
    assert set(AGENTS) == set(AGENT_SETTINGS)
    for name, cls in AGENTS.items():
        assert cls.settings_class is AGENT_SETTINGS[name]
        assert cls.settings_class.agent == name
        assert cls.defaults == cls.settings_class().to_dict()  # a derived view, not a copy


@pytest.mark.parametrize("cls", list(AGENT_SETTINGS.values()), ids=list(AGENT_SETTINGS))
def test_every_field_is_a_declared_setting(cls: type[AgentSettings]) -> None:
    hints = get_type_hints(cls)
    for f in fields(cls):
        assert hints[f.name] is kind(f), f"{f.name}: annotation and default disagree"
        assert f.metadata["help"], f"{f.name} has no help"
        if kind(f) is not bool:
            assert f.metadata["range"].contains(f.default), f"{f.name}: default out of range"


# ---------------------------------------------------------------------------- proto


@pytest.mark.parametrize("agent", NAMES)
def test_proto_message_has_the_dataclass_fields(agent: str) -> None:
    cls = AGENTS[agent].settings_class
    message = settings_message(agent)
    assert message.name == cls.__name__
    ours = {f.name: kind(f) for f in fields(cls)}
    theirs = {f.name: f for f in message.fields}
    assert list(theirs) == list(ours)  # same names, in the same order
    for name, t in ours.items():
        assert theirs[name].type in PROTO_KINDS[t], f"{agent}.{name}: {t} vs proto type"
        assert theirs[name].has_presence, f"{agent}.{name} must be `optional`: 0 is a value"


def _other_values(cls: type[AgentSettings], f: Field[Any]) -> list[Any]:
    """Values of ``f`` other than its default that the class accepts (0 where allowed)."""
    t = kind(f)
    if t is bool:
        return [not f.default]
    rng = f.metadata["range"]
    candidates: list[Any] = [0, rng.low, rng.high, 1, 3, 0.25, 0.3, -2.5, 7.5]
    out = []
    for v in candidates:
        if v is None or v == f.default or (t is int and v != int(v)):
            continue
        v = t(v)
        if rng.contains(v) and v not in out:
            try:
                cls.from_dict({f.name: v})
            except AgentSettingsError:  # breaks a rule with another setting's default
                continue
            out.append(v)
    return out


def _cases() -> list[Any]:
    cases = []
    for agent, cls in AGENT_SETTINGS.items():
        cases.append(pytest.param(cls(), id=f"{agent}-defaults"))
        for f in fields(cls):
            values = _other_values(cls, f)
            assert values, f"no non-default value found for {agent}.{f.name}"
            for v in values:
                cases.append(pytest.param(cls.from_dict({f.name: v}), id=f"{agent}-{f.name}={v}"))
    return cases


@pytest.mark.parametrize("settings", _cases())
def test_round_trip_is_identity(settings: AgentSettings) -> None:
    """dataclass -> proto (bytes) -> dataclass -> JSON -> dataclass."""
    wire = codec.agent_spec_to_proto(settings.agent, settings).SerializeToString()
    msg = cpb.AgentSpec.FromString(wire)
    assert msg.name == settings.agent
    back = codec.agent_settings_from_proto(msg)
    assert back == settings
    stored = json.loads(json.dumps(back.to_dict()))
    again = type(settings).from_dict(stored)
    assert again == settings
    for f in fields(settings):
        assert type(getattr(again, f.name)) is kind(f)


def test_zero_is_a_value_on_the_wire() -> None:
    msg = codec.agent_spec_to_proto("reinforce", {"layers_step": 0})
    assert msg.reinforce.HasField("layers_step") and not msg.reinforce.HasField("hidden")
    name, values = codec.agent_spec_from_proto(cpb.AgentSpec.FromString(msg.SerializeToString()))
    assert (name, values) == ("reinforce", {"layers_step": 0})
    assert codec.agent_settings_from_proto(msg) == ReinforceSettings(layers_step=0)


def test_float32_fields_come_back_as_written() -> None:
    msg = codec.agent_spec_to_proto("reinforce", {"learning_rate": 0.0006, "init_range": 0.1})
    assert msg.reinforce.learning_rate != 0.0006  # float32 on the wire
    values = codec.agent_spec_from_proto(msg)[1]
    assert values == {"learning_rate": 0.0006, "init_range": 0.1}


def test_settings_of_another_agent_are_refused() -> None:
    with pytest.raises(AgentSettingsError, match="agent.reinforce settings"):
        codec.agent_spec_from_proto(
            cpb.AgentSpec(name="random", reinforce=cpb.ReinforceSettings(hidden=4))
        )
    with pytest.raises(AgentSettingsError, match="ReinforceSettings"):
        codec.agent_spec_to_proto("random", ReinforceSettings())
    with pytest.raises(AgentSettingsError, match="hiden"):
        codec.agent_spec_to_proto("reinforce", {"hiden": 3})


# ---------------------------------------------------------------------------- the validator


def _outside(f: Field[Any]) -> list[Any]:
    rng, t = f.metadata["range"], kind(f)
    step = 1 if t is int else 1e-3
    out = []
    if rng.low is not None:
        out.append(t(rng.low) if rng.open_low else t(rng.low - step))
    if rng.high is not None:
        out.append(t(rng.high) if rng.open_high else t(rng.high + step))
    return out


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        pytest.param(cls, f.name, v, id=f"{cls.agent}-{f.name}={v}")
        for cls in AGENT_SETTINGS.values()
        for f in fields(cls)
        if kind(f) is not bool
        for v in _outside(f)
    ],
)
def test_out_of_range_names_the_setting_and_its_range(
    cls: type[AgentSettings], name: str, value: Any
) -> None:
    info = {i.name: i for i in setting_infos(cls)}[name]
    with pytest.raises(AgentSettingsError) as exc:
        cls.from_dict({name: value})
    assert f"{cls.agent}.{name} must be {info.range}" in str(exc.value)


@pytest.mark.parametrize(
    ("cls", "given", "words"),
    [
        (ReinforceSettings, {"hidden": 3.5}, "reinforce.hidden must be an integer"),
        (ReinforceSettings, {"batch": True}, "reinforce.batch must be an integer"),
        (ReinforceSettings, {"skip_connections": "yes"}, "true or false"),
        (ReinforceSettings, {"skip_connections": 1}, "true or false"),
        (ReinforceSettings, {"learning_rate": "0.1"}, "finite number"),
        (QLearningSettings, {"q_init": math.inf}, "qlearning.q_init must be a finite number"),
        (QLearningSettings, {"discount": math.nan}, "qlearning.discount"),
        (QLearningSettings, {"replay": 1.0}, "qlearning.replay must be an integer"),
        (QLearningSettings, {"q_init": -(10**400)}, "qlearning.q_init must be a finite number"),
        (RandomSettings, {"layers": 10**400}, "random.layers must be between 0 and 64"),
        (RandomSettings, {"layers": 65}, "random.layers must be between 0 and 64"),
        (
            EvolutionSettings,
            {"population": 10, "sample_size": 11},
            "evolution.sample_size must be at most population (10), got 11",
        ),
        (ReinforceSettings, {"hiden": 35}, "unknown setting(s) ['hiden'] for agent 'reinforce'"),
    ],
)
def test_bad_values_are_named(cls: type[AgentSettings], given: dict[str, Any], words: str) -> None:
    with pytest.raises(AgentSettingsError) as exc:
        cls.from_dict(given)
    assert words in str(exc.value)


def test_whole_numbers_are_taken_for_reals() -> None:
    s = QLearningSettings.from_dict({"discount": 0, "learning_rate": 1})
    assert (s.discount, s.learning_rate) == (0.0, 1.0) and type(s.discount) is float


# ---------------------------------------------------------------------------- agents and specs


@pytest.mark.parametrize("agent", NAMES)
def test_agents_receive_the_checked_dataclass(agent: str) -> None:
    cls = AGENTS[agent]
    space = named_space(DEFAULT_SPACE[agent]).bind(input_shape("digits"))
    made = cls(space, None, 0, 100)
    assert made.settings == cls.settings_class()  # type: ignore[attr-defined]
    spec = SearchSpec(agent=agent, budget=10).validate()
    assert spec.agent_settings == cls.settings_class().to_dict()  # stored whole
    assert spec.make_agent().settings == spec.settings()  # type: ignore[attr-defined]
    with pytest.raises(AgentSettingsError, match="takes"):
        other = next(c for n, c in AGENT_SETTINGS.items() if n != agent)
        cls(space, other(), 0, 100)


def test_stored_searches_with_a_settings_dict_still_load() -> None:
    """Databases written before this schema hold the settings the user gave, as a dict (and
    float32-widened reals from the old codec)."""
    data = SearchSpec(agent="reinforce").to_json()
    data["agent_settings"] = {"batch": 4, "learning_rate": 0.0006000000284984708}
    spec = SearchSpec.from_json(json.loads(json.dumps(data)))
    assert spec.settings() == ReinforceSettings(batch=4, learning_rate=0.0006000000284984708)
    assert spec.validate().agent_settings["hidden"] == 35


def test_spec_errors_name_the_setting() -> None:
    with pytest.raises(SpecError, match=r"reinforce\.layers_step must be between 0 and 64"):
        SearchSpec(agent="reinforce", agent_settings={"layers_step": -1}).validate()


# ---------------------------------------------------------------------------- CLI


def _subparser(command: str) -> Any:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command]  # type: ignore[index]


@pytest.mark.parametrize("command", ["search", "demo"])
def test_cli_agent_choices_are_the_registry(command: str) -> None:
    agent = next(a for a in _subparser(command)._actions if a.dest == "agent")
    assert tuple(agent.choices) == tuple(AGENTS) == tuple(AGENT_SETTINGS)


def test_cli_agent_setting_help_lists_every_setting() -> None:
    option = next(a for a in _subparser("search")._actions if a.dest == "agent_setting")
    for agent, cls in AGENT_SETTINGS.items():
        names = ", ".join(f.name for f in fields(cls))
        assert f"{agent}: {names}" in option.help


def test_parse_assignments() -> None:
    got = parse_assignments(
        "reinforce", ["layers_step=0", "skip_connections=false", "failure_reward=-0.5"]
    )
    assert got == {"layers_step": 0, "skip_connections": False, "failure_reward": -0.5}
    assert type(got["failure_reward"]) is float
    for bad, words in [
        (["layers_step"], "NAME=VALUE"),
        (["layers=2"], "unknown setting 'layers'"),
        (["hidden=many"], "reinforce.hidden must be an integer"),
        (["skip_connections=maybe"], "true or false"),
        (["hidden=0"], "reinforce.hidden must be between 1 and 256"),
    ]:
        with pytest.raises(AgentSettingsError, match=words.replace("(", r"\(")):
            parse_assignments("reinforce", bad)


def test_cli_bad_agent_setting_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from nasrl.cli.commands import main

    code = main(["search", "--controller", "127.0.0.1:1", "--agent-setting", "hidden=0"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "nasrl: error: reinforce.hidden must be between 1 and 256, got 0"
    )


def test_cli_agents_json(capsys: pytest.CaptureFixture[str]) -> None:
    from nasrl.cli.commands import main

    assert main(["agents", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["agent"], r["setting"]) for r in rows} == {
        (agent, f.name) for agent, cls in AGENT_SETTINGS.items() for f in fields(cls)
    }
    layers_step = next(r for r in rows if r["setting"] == "layers_step")
    assert layers_step == {
        "agent": "reinforce",
        "setting": "layers_step",
        "type": "int",
        "default": 2,
        "range": "between 0 and 64",
        "help": layers_step["help"],
    }


def test_readme_settings_table_is_the_schema() -> None:
    """README's "Agent settings" table has one row per setting, as the schema describes it."""
    readme = (ROOT / "README.md").read_text()
    for agent, cls in AGENT_SETTINGS.items():
        for i in setting_infos(cls):
            row = f"| `{agent}` | `{i.name}` | {i.default_text} | {i.range} | {i.help} |"
            assert row in readme, f"README's settings table lacks or misstates: {row}"
