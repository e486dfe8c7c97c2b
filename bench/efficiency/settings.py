"""What the benchmark compares: the agents, the two small search spaces they search and each
agent's settings.

reinforce, random and evolution search the same small Zoph space (4 layers: filter sizes
1/3/5, strides 1/2, 8/16/24 filters, skip connections). qlearning cannot search a Zoph space:
it searches a small MetaQNN space (conv filters 8/16/24, FC 64/32, depth <= 5), so its numbers
compare budgets, not spaces. tpe (Optuna) searches the Zoph decisions."""

from __future__ import annotations

from controller_service.spaces import MetaQNNSpace, ZophSpace
from protos import controller_pb2 as cpb

__all__ = [
    "AGENTS",
    "DATASETS",
    "ZOPH",
    "METAQNN",
    "space_of",
    "space_proto",
    "agent_spec",
]

AGENTS = ("reinforce", "qlearning", "random", "evolution", "tpe")
DATASETS = ("digits", "mnist5k")

#: the Zoph space shared by reinforce, random, evolution and tpe (all children have 4 layers)
ZOPH = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16, 24), max_layers=4)
#: the MetaQNN space of qlearning
METAQNN = MetaQNNSpace(conv_filters=(8, 16, 24), fc_units=(64, 32), max_depth=5)


def space_of(agent: str) -> str:
    return "metaqnn" if agent == "qlearning" else "zoph"


def space_proto(agent: str) -> cpb.SearchSpace:
    """The space ``agent`` searches, as CreateSearch takes it."""
    if space_of(agent) == "metaqnn":
        return cpb.SearchSpace(
            metaqnn=cpb.MetaQNNSpace(
                conv_filters=list(METAQNN.conv_filters),
                fc_units=list(METAQNN.fc_units),
                max_depth=METAQNN.max_depth,
            )
        )
    return cpb.SearchSpace(
        zoph=cpb.ZophSpace(
            filter_sizes=list(ZOPH.filter_sizes),
            strides=list(ZOPH.strides),
            filters=list(ZOPH.filters),
            max_layers=ZOPH.max_layers,
        )
    )


def agent_spec(agent: str, qlearning_scale: float) -> cpb.AgentSpec:
    if agent == "random":
        return cpb.AgentSpec(name=agent, random=cpb.RandomSettings(layers=ZOPH.max_layers))
    if agent == "evolution":
        return cpb.AgentSpec(
            name=agent,
            evolution=cpb.EvolutionSettings(population=8, sample_size=3, layers=ZOPH.max_layers),
        )
    if agent == "qlearning":
        return cpb.AgentSpec(
            name=agent, qlearning=cpb.QLearningSettings(schedule_scale=qlearning_scale)
        )
    return cpb.AgentSpec(name=agent)
