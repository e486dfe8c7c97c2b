"""MetaQNN's search space (Baker et al. 2017): the paper's transition rules, representation-size
bins, path following and decoding, and random walks / mutations that always stay valid."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller_service.spaces import MetaQNNSpace, QState, size_bin
from nasrl.core.arch import FC, GAP, ArchError, Architecture, Conv, Layer, Pool
from nasrl.core.shapes import InputShape, analyze

DIGITS = InputShape(1, 8, 8, 10)
MNIST = InputShape(1, 28, 28, 10)
CIFAR = InputShape(3, 32, 32, 10)
SPACE8 = MetaQNNSpace().bind(DIGITS)
SPACE28 = MetaQNNSpace().bind(MNIST)
SPACE32 = MetaQNNSpace().bind(CIFAR)
TERMINATIONS = {"GAP", "SM"}
FC_ACTIONS = {"FC(512)", "FC(256)", "FC(128)"}


def walk(space: MetaQNNSpace, steps: list[str]) -> list[QState]:
    """The states of a (possibly unfinished) path: start state first."""
    states = [space.start()]
    for step in steps:
        options = {a.action: a for a in space.actions(states[-1])}
        assert step in options, f"{step} not offered after {states[-1].key}"
        states.append(options[step])
    return states


def after(space: MetaQNNSpace, steps: list[str]) -> set[str]:
    """The actions the rules allow after a path prefix."""
    return {a.action for a in space.actions(walk(space, steps)[-1])}


def kinds(actions: set[str]) -> set[str]:
    return {a.split("(")[0] for a in actions}


# ---------------------------------------------------------------------------- bins


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, 2),
        (2, 2),
        (3, 2),
        (4, 1),
        (5, 1),
        (7, 1),
        (8, 0),
        (9, 0),
        (28, 0),
        (224, 0),
    ],
)
def test_size_bin_boundaries(size: int, expected: int) -> None:
    assert size_bin(size) == expected


@pytest.mark.parametrize(
    ("space", "steps", "sizes", "bins"),
    [
        # 8x8 (digits); pooling is not a first layer (see test_no_pooling_as_the_first_layer...),
        # so a 1x1 convolution (size kept) comes first
        (SPACE8, ["C(1,64)", "P(2,2)"], [8, 8, 4], ["(inf,8]", "(inf,8]", "(8,4]"]),
        (SPACE8, ["C(1,64)", "P(3,2)"], [8, 8, 3], ["(inf,8]", "(inf,8]", "(4,1]"]),
        (SPACE8, ["C(1,64)", "P(5,3)"], [8, 8, 2], ["(inf,8]", "(inf,8]", "(4,1]"]),
        (
            SPACE8,
            ["C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(1,64)", "P(2,2)"],
            [8, 8, 4, 4, 2, 2, 1],
            ["(inf,8]", "(inf,8]", "(8,4]", "(8,4]", "(4,1]", "(4,1]", "(4,1]"],
        ),
        # the pooling arithmetic from the start state itself, where pool_first allows it
        (MetaQNNSpace(pool_first=True).bind(DIGITS), ["P(2,2)"], [8, 4], ["(inf,8]", "(8,4]"]),
        (MetaQNNSpace(pool_first=True).bind(DIGITS), ["P(5,3)"], [8, 2], ["(inf,8]", "(4,1]"]),
        # 28x28 (MNIST)
        (
            SPACE28,
            ["C(1,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(1,64)", "P(2,2)"],
            [28, 28, 14, 14, 7, 7, 3, 3, 1],
            [
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(8,4]",
                "(8,4]",
                "(4,1]",
                "(4,1]",
                "(4,1]",
            ],
        ),
        (
            SPACE28,
            ["C(1,64)", "P(3,2)", "C(3,64)", "P(3,2)", "C(3,64)", "P(3,2)"],
            [28, 28, 13, 13, 6, 6, 2],
            ["(inf,8]", "(inf,8]", "(inf,8]", "(inf,8]", "(8,4]", "(8,4]", "(4,1]"],
        ),
        (
            SPACE28,
            ["C(1,64)", "P(5,3)", "C(5,64)", "P(5,3)"],
            [28, 28, 8, 8, 2],
            ["(inf,8]", "(inf,8]", "(inf,8]", "(inf,8]", "(4,1]"],
        ),
        (
            MetaQNNSpace(pool_first=True).bind(MNIST),
            ["P(3,2)", "C(3,64)", "P(3,2)"],
            [28, 13, 13, 6],
            ["(inf,8]", "(inf,8]", "(inf,8]", "(8,4]"],
        ),
        # 32x32 (CIFAR)
        (
            SPACE32,
            ["C(1,64)", "P(5,3)", "C(3,64)", "P(3,2)", "C(3,64)", "P(2,2)"],
            [32, 32, 10, 10, 4, 4, 2],
            ["(inf,8]", "(inf,8]", "(inf,8]", "(inf,8]", "(8,4]", "(8,4]", "(4,1]"],
        ),
        (
            SPACE32,
            ["C(1,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)"],
            [32, 32, 16, 16, 8, 8, 4, 4, 2],
            [
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(inf,8]",
                "(8,4]",
                "(8,4]",
                "(4,1]",
            ],
        ),
    ],
)
def test_representation_sizes_and_bins(
    space: MetaQNNSpace, steps: list[str], sizes: list[int], bins: list[str]
) -> None:
    states = walk(space, steps)
    assert [s.size for s in states] == sizes
    assert [s.key.split("/", 1)[1] for s in states] == bins
    assert [s.depth for s in states] == list(range(len(steps) + 1))


def test_state_keys_name_layer_depth_and_bin() -> None:
    """Non-FC keys are layer@depth/bin; an FC key adds its consecutive-FC count (#run)."""
    states = walk(SPACE8, ["C(3,64)", "P(2,2)", "FC(256)", "FC(128)", "SM"])
    assert [s.key for s in states] == [
        "start@0/(inf,8]",
        "C(3,64)@1/(inf,8]",
        "P(2,2)@2/(8,4]",
        "FC(256)#1@3/(4,1]",
        "FC(128)#2@4/(4,1]",
        "SM@5/(4,1]",
    ]
    assert [s.action for s in states[1:]] == ["C(3,64)", "P(2,2)", "FC(256)", "FC(128)", "SM"]
    assert states[-1].terminal and not any(s.terminal for s in states[:-1])
    assert SPACE28.start().key == "start@0/(inf,8]" and SPACE28.start().size == 28


def test_start_uses_the_smaller_side_of_a_non_square_input() -> None:
    assert MetaQNNSpace().bind(InputShape(3, 20, 12, 5)).start().size == 12


# ---------------------------------------------------------------------------- transitions


def test_start_offers_every_conv_but_no_pool_no_termination_and_no_fc_on_8x8() -> None:
    start = set(after(SPACE8, []))
    convs = {f"C({k},{f})" for k in (1, 3, 5) for f in (64, 128, 256, 512)}
    assert start == convs
    assert not start & TERMINATIONS
    # with pool_first the three pools join them, still no termination and no FC (size 8)
    assert after(MetaQNNSpace(pool_first=True).bind(DIGITS), []) == convs | {
        "P(5,3)",
        "P(3,2)",
        "P(2,2)",
    }


def test_every_layer_state_may_terminate_and_depth_grows_by_one() -> None:
    steps = ["C(5,64)", "P(2,2)", "C(3,128)", "P(2,2)", "FC(512)", "FC(256)"]
    states = walk(SPACE8, steps)
    for s in states[1:]:
        nxt = SPACE8.actions(s)
        assert TERMINATIONS <= {a.action for a in nxt}
        assert {a.depth for a in nxt} == {s.depth + 1}


def test_terminal_states_have_no_actions() -> None:
    for end in ("GAP", "SM"):
        assert SPACE8.actions(walk(SPACE8, ["C(3,64)", end])[-1]) == []


def test_no_pooling_right_after_pooling() -> None:
    first = MetaQNNSpace(pool_first=True).bind(MNIST)
    for pool in ("P(2,2)", "P(3,2)", "P(5,3)"):
        assert "P" not in kinds(after(SPACE28, ["C(1,64)", pool]))
        assert "P" not in kinds(after(first, [pool]))  # a first pool is still a pool
        assert "C" in kinds(after(SPACE28, ["C(1,64)", pool]))
    # but pooling again after a convolution in between
    assert "P(2,2)" in after(SPACE28, ["C(1,64)", "P(2,2)", "C(3,64)"])
    assert "P(2,2)" in after(first, ["P(2,2)", "C(3,64)"])


def test_receptive_fields_and_pool_windows_fit_the_representation() -> None:
    # 8 -> C(1) -> P(2,2) -> 4: no 5x5 conv, no 5x5 pool after the next conv
    assert {"C(5,64)", "C(5,512)"}.isdisjoint(after(SPACE8, ["C(1,64)", "P(2,2)"]))
    assert {"C(3,64)", "C(1,64)"} <= after(SPACE8, ["C(1,64)", "P(2,2)"])
    assert after(SPACE8, ["C(1,64)", "P(2,2)", "C(3,64)"]) & {"P(5,3)", "P(3,2)", "P(2,2)"} == {
        "P(3,2)",
        "P(2,2)",
    }
    # 8 -> C(1) -> P(5,3) -> 2: only 1x1 convolutions
    assert {a for a in after(SPACE8, ["C(1,64)", "P(5,3)"]) if a.startswith("C")} == {
        "C(1,64)",
        "C(1,128)",
        "C(1,256)",
        "C(1,512)",
    }
    # 2 -> C(1) -> only the 2x2 pool fits
    assert {a for a in after(SPACE8, ["C(1,64)", "P(5,3)", "C(1,64)"]) if a.startswith("P")} == {
        "P(2,2)"
    }
    # 1x1 -> no pooling at all
    assert "P" not in kinds(after(SPACE8, ["C(1,64)", "P(5,3)", "C(1,64)", "P(2,2)", "C(1,64)"]))
    # a 5x5 pool does fit the 8x8 input, after a convolution
    assert "P(5,3)" in after(SPACE8, ["C(1,64)"])
    # every offered action, on every input, respects the two bounds
    for space in (SPACE8, SPACE28, SPACE32):
        rng = random.Random(3)
        for _ in range(50):
            s = space.start()
            while not s.terminal:
                for a in space.actions(s):
                    if a.kind in ("C", "P"):
                        assert a.a <= s.size
                s = rng.choice(space.actions(s))


def test_fc_only_when_representation_is_at_most_7() -> None:
    assert "FC" not in kinds(after(SPACE8, []))  # 8x8 start
    assert "FC" not in kinds(after(SPACE8, ["C(3,64)"]))  # conv keeps 8
    assert FC_ACTIONS <= after(SPACE8, ["C(1,64)", "P(2,2)"])  # 4
    assert FC_ACTIONS <= after(SPACE8, ["C(1,64)", "P(3,2)"])  # 3
    assert FC_ACTIONS <= after(SPACE8, ["C(1,64)", "P(2,2)", "C(3,64)"])  # still 4
    # 28 -> 14: no FC yet; -> 7: FC; -> 3: FC
    assert "FC" not in kinds(after(SPACE28, ["C(1,64)", "P(2,2)"]))
    assert "FC" not in kinds(after(SPACE28, ["C(1,64)", "P(2,2)", "C(3,64)"]))
    assert FC_ACTIONS <= after(SPACE28, ["C(1,64)", "P(2,2)", "C(3,64)", "P(2,2)"])
    assert FC_ACTIONS <= after(
        SPACE28, ["C(1,64)", "P(2,2)", "C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)"]
    )
    # an 8x8 input starts above the limit, a 7x7 one at it
    assert "FC" not in kinds(after(MetaQNNSpace().bind(InputShape(1, 8, 8, 2)), []))
    assert FC_ACTIONS <= after(MetaQNNSpace().bind(InputShape(1, 7, 7, 2)), [])


def test_fc_units_non_increasing_and_at_most_two_in_a_row() -> None:
    cp = ["C(1,64)", "P(2,2)"]  # 8 -> 8 -> 4
    assert after(SPACE8, cp + ["FC(512)"]) == FC_ACTIONS | TERMINATIONS
    assert after(SPACE8, cp + ["FC(256)"]) == {"FC(256)", "FC(128)"} | TERMINATIONS
    assert after(SPACE8, cp + ["FC(128)"]) == {"FC(128)"} | TERMINATIONS
    assert after(SPACE8, cp + ["FC(512)", "FC(256)"]) == TERMINATIONS
    assert after(SPACE8, cp + ["FC(128)", "FC(128)"]) == TERMINATIONS
    states = walk(SPACE8, cp + ["FC(512)", "FC(256)"])
    assert [s.fc_run for s in states] == [0, 0, 0, 1, 2]
    assert states[-1].size == 1


def test_max_fc_setting_bounds_the_run() -> None:
    cp = ["C(1,64)", "P(2,2)"]
    one = MetaQNNSpace(max_fc=1).bind(DIGITS)
    assert FC_ACTIONS <= after(one, cp)
    assert after(one, cp + ["FC(512)"]) == TERMINATIONS
    three = MetaQNNSpace(max_fc=3).bind(DIGITS)
    assert after(three, cp + ["FC(512)", "FC(512)"]) == FC_ACTIONS | TERMINATIONS
    assert after(three, cp + ["FC(512)", "FC(512)", "FC(256)"]) == TERMINATIONS


def test_max_fc_zero_means_no_fc_layers() -> None:
    """``validate`` accepts max_fc = 0, which can only mean "no FC layers"; a first FC must count
    as a run of one, which is already over the limit."""
    space = MetaQNNSpace(max_fc=0).validate().bind(DIGITS)
    assert "FC" not in kinds(after(space, ["C(1,64)", "P(2,2)"]))
    assert "FC" not in kinds(after(MetaQNNSpace(max_fc=0).bind(InputShape(1, 4, 4, 10)), []))
    assert FC_ACTIONS <= after(SPACE8, ["C(1,64)", "P(2,2)"])  # the default does offer FC there


def test_only_fc_or_termination_after_fc() -> None:
    for steps in (
        ["C(1,64)", "P(2,2)", "FC(512)"],
        ["C(1,64)", "P(3,2)", "FC(128)"],
        ["C(1,64)", "P(2,2)", "C(1,64)", "FC(256)"],
    ):
        assert kinds(after(SPACE8, steps)) <= {"FC", "GAP", "SM"}
        assert "FC" in kinds(after(SPACE8, steps)) and TERMINATIONS <= after(SPACE8, steps)


def test_only_termination_at_max_depth() -> None:
    deep = ["C(1,64)"] * 12
    assert after(SPACE8, deep[:11]) > TERMINATIONS  # depth 11: more than termination
    assert after(SPACE8, deep) == TERMINATIONS  # depth 12 = max_depth
    assert {a.depth for a in SPACE8.actions(walk(SPACE8, deep)[-1])} == {13}
    short = MetaQNNSpace(max_depth=3).bind(DIGITS)
    assert after(short, ["C(3,64)", "P(2,2)"]) > TERMINATIONS
    assert after(short, ["C(3,64)", "P(2,2)", "C(3,64)"]) == TERMINATIONS
    # an FC run of one at depth 3 could go on (max_fc 2), but depth 3 is the limit
    assert after(short, ["C(3,64)", "P(2,2)", "FC(512)"]) == TERMINATIONS
    assert after(short, ["C(3,64)", "P(2,2)"]) >= FC_ACTIONS


def test_actions_returns_a_fresh_list_each_time() -> None:
    s = SPACE8.start()
    first = SPACE8.actions(s)
    first.clear()
    assert len(SPACE8.actions(s)) == 12  # 3 receptive fields x 4 filter counts, no pooling


# ---------------------------------------------------------------------------- Baker et al. 2017
# The rules below follow Baker et al. 2017 (MetaQNN, "Designing Neural Network Architectures
# using Reinforcement Learning": the state/action space and its Table of the state space) and the
# authors' code, github.com/bowenbaker/metaqnn: libs/grammar/state_enumerator.py (transitions,
# enumerated from the size-bucketed state) and models/*/state_space_parameters.py (settings).


def test_no_pooling_as_the_first_layer_by_default() -> None:
    """The authors' code offers pooling from the start state only if
    ``allow_initial_pooling`` (state_enumerator.py), which their state_space_parameters.py
    set to False ("Allow pooling as the first layer"); ``pool_first=True`` allows it."""
    assert MetaQNNSpace().pool_first is False
    for space in (SPACE8, SPACE28, SPACE32):
        assert "P" not in kinds(after(space, []))
        assert "C" in kinds(after(space, []))
        for path in (["P(2,2)", "GAP"], ["P(2,2)", "C(1,64)", "SM"], ["P(5,3)", "SM"]):
            with pytest.raises(ValueError):
                space.follow(path)
        rng = random.Random(7)
        paths = [space.random_path(rng) for _ in range(200)]
        assert not any(p[0].startswith("P") for p in paths)
        assert any(step.startswith("P") for p in paths for step in p[1:])  # pooling later: yes
    # mutations do not bring a first pool in either
    rng = random.Random(1)
    for _ in range(200):
        assert not SPACE28.mutate(["C(3,64)", "P(2,2)", "C(3,64)", "GAP"], rng)[0].startswith("P")
    # pool_first=True: every pool that fits is offered first, with the usual arithmetic
    first = MetaQNNSpace(pool_first=True).bind(MNIST)
    assert {"P(2,2)", "P(3,2)", "P(5,3)"} <= after(first, [])
    states = first.follow(["P(2,2)", "GAP"])
    assert (states[1].key, states[1].size) == ("P(2,2)@1/(inf,8]", 14)
    assert first.decode(["P(2,2)", "GAP"]) == Architecture((Layer(Pool(2, 2)), Layer(GAP())))
    # the flag changes only the start state's choices
    for steps in (["C(1,64)"], ["C(1,64)", "P(2,2)"], ["C(1,64)", "P(2,2)", "C(3,64)"]):
        assert after(first, steps) == after(SPACE28, steps)


def test_fc_from_representation_size_7_down() -> None:
    """The paper bins the representation size into (inf,8], (8,4] and (4,1] and allows FC
    layers only from the small sizes; the authors' code buckets the size (image_size_bucket:
    > 7 -> 8, > 3 -> 4, else 1) and allows FC when the bucket is <= 4
    (allow_fully_connected, applied to the bucketed state), i.e. from size 7 down."""
    cp = ["C(1,64)", "P(2,2)"]
    # 28x28 MNIST: 28 -> C -> 28 -> P(2,2) -> 14: no FC; -> C -> P(2,2) -> 7: FC offered
    assert "FC" not in kinds(after(SPACE28, ["C(1,64)"]))
    assert walk(SPACE28, cp)[-1].size == 14 and "FC" not in kinds(after(SPACE28, cp))
    assert walk(SPACE28, cp + ["C(3,64)", "P(2,2)"])[-1].size == 7
    assert FC_ACTIONS <= after(SPACE28, cp + ["C(3,64)", "P(2,2)"])
    assert FC_ACTIONS <= after(SPACE28, cp + ["C(3,64)", "P(2,2)", "C(5,64)"])  # conv keeps 7
    # size 8 (28 -> P(5,3) -> 8): no FC
    assert walk(SPACE28, ["C(1,64)", "P(5,3)"])[-1].size == 8
    assert "FC" not in kinds(after(SPACE28, ["C(1,64)", "P(5,3)"]))
    # the boundary both ways, on the start state and after a convolution
    for size in range(1, 12):
        space = MetaQNNSpace().bind(InputShape(1, size, size, 2))
        for steps in ([], ["C(1,64)"]):
            assert ("FC" in kinds(after(space, steps))) == (size <= 7), (size, steps)
    # FC is offered exactly from the states in the bins (8,4] and (4,1]
    rng, checked = random.Random(5), set()
    for space in (SPACE8, SPACE28, SPACE32):
        for _ in range(300):
            s = space.start()
            while not s.terminal:
                if s.kind in ("start", "C", "P") and s.depth < space.max_depth:
                    assert ("FC" in {a.kind for a in space.actions(s)}) == (size_bin(s.size) > 0)
                    checked.add(size_bin(s.size))
                s = rng.choice(space.actions(s))
    assert checked == {0, 1, 2}
    # the fc_max_size setting is still honoured
    four = MetaQNNSpace(fc_max_size=4).bind(MNIST)
    assert "FC" not in kinds(after(four, cp + ["C(3,64)", "P(2,2)"]))  # 7 > 4
    assert FC_ACTIONS <= after(four, cp + ["C(3,64)", "P(2,2)", "C(3,64)", "P(2,2)"])  # 3
    with pytest.raises(ValueError):
        four.follow(cp + ["C(3,64)", "P(2,2)", "FC(512)", "SM"])
    SPACE28.follow(cp + ["C(3,64)", "P(2,2)", "FC(512)", "SM"])
    for size in range(1, 12):
        for limit in (4, 8):
            space = MetaQNNSpace(fc_max_size=limit).bind(InputShape(1, size, size, 2))
            assert ("FC" in kinds(after(space, []))) == (size <= limit), (size, limit)


def test_fc_state_key_counts_the_fc_run_so_equal_keys_have_equal_successors() -> None:
    """The authors' code keeps the number of consecutive FC layers in the state (an fc
    state's filter_depth; state_enumerator.py allows fc -> fc only while filter_depth <
    max_fc - 1), so FC(128) after one FC and after two FCs are different states with
    different successors. The Q-table keys states by ``QState.key``, so that key must name
    the run ("FC(128)#1@4/(4,1]" vs "FC(128)#2@4/(4,1]") for the tabular Q-learning of Baker
    et al. 2017 to stay Markov in its states."""
    one = walk(SPACE8, ["C(1,64)", "C(1,64)", "P(2,2)", "FC(128)"])[-1]
    two = walk(SPACE8, ["C(1,64)", "P(2,2)", "FC(256)", "FC(128)"])[-1]
    assert (one.action, one.depth, one.size) == (two.action, two.depth, two.size)
    assert (one.key, two.key) == ("FC(128)#1@4/(4,1]", "FC(128)#2@4/(4,1]")
    assert {a.action for a in SPACE8.actions(one)} == {"FC(128)"} | TERMINATIONS
    assert {a.action for a in SPACE8.actions(two)} == TERMINATIONS
    # non-FC keys carry no run
    assert [s.key for s in walk(SPACE8, ["C(3,64)", "P(2,2)"])] == [
        "start@0/(inf,8]",
        "C(3,64)@1/(inf,8]",
        "P(2,2)@2/(8,4]",
    ]

    # over random walks: states with one key have one set of successor keys. For FC states
    # that is the whole set. Convolution and pooling states keep their exact representation
    # size, which the key only bins, and which receptive fields and pool windows fit depends
    # on that size (C(1,64)@5/(8,4] may be 7 or 4 wide), so for them the check covers the
    # successors the key does determine: the FC layers and the terminations.
    successors: dict[str, set[frozenset[str]]] = {}
    for space in (
        SPACE8,
        SPACE28,
        SPACE32,
        MetaQNNSpace(max_fc=3).bind(MNIST),
        MetaQNNSpace(pool_first=True).bind(DIGITS),
    ):
        rng = random.Random(11)
        for _ in range(400):
            s = space.start()
            while not s.terminal:
                nxt = space.actions(s)
                if s.kind != "FC":
                    nxt = [a for a in nxt if a.kind in ("FC", "GAP", "SM")]
                successors.setdefault(f"{space.max_fc}:{s.key}", set()).add(
                    frozenset(a.key for a in nxt)
                )
                s = rng.choice(space.actions(s))
    assert {k: v for k, v in successors.items() if len(v) > 1} == {}
    # not vacuous: the walks met FC layers of one action and depth at runs 1 and 2
    fc = {k.split(":", 1)[1] for k in successors if "#" in k}
    assert any(k.replace("#1@", "#2@") in fc for k in fc if "#1@" in k)


# ---------------------------------------------------------------------------- follow / decode


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        # bad: the index of the step that breaks the rule (every step before it is allowed),
        # None for a path that only fails to end with a termination
        (["GAP"], 0),  # no termination from the start
        (["SM"], 0),
        ([], None),
        (["C(3,64)"], None),  # does not terminate
        (["C(3,64)", "P(2,2)"], None),
        (["P(2,2)", "GAP"], 0),  # pooling as the first layer
        (["C(1,64)", "P(2,2)", "P(2,2)", "GAP"], 2),  # P after P
        (["FC(512)", "SM"], 0),  # FC at size 8
        (["C(3,64)", "FC(512)", "SM"], 1),
        (["C(1,64)", "P(2,2)", "FC(256)", "FC(512)", "SM"], 3),  # units grow
        (["C(1,64)", "P(2,2)", "FC(512)", "FC(256)", "FC(128)", "SM"], 4),  # three FC
        (["C(1,64)", "P(2,2)", "FC(128)", "C(1,64)", "GAP"], 3),  # conv after FC
        (["C(1,64)", "P(2,2)", "C(1,64)", "FC(128)", "P(2,2)", "GAP"], 4),  # pool after FC
        (["C(1,64)", "P(2,2)", "C(5,64)", "GAP"], 2),  # 5x5 conv on 4x4
        (["C(1,64)", "P(2,2)", "C(3,64)", "P(5,3)", "GAP"], 3),  # 5x5 pool on 4x4
        (["C(3,64)", "GAP", "SM"], 2),  # nothing after termination
        (["C(1,64)"] * 13 + ["GAP"], 12),  # deeper than max_depth
        (["C(2,64)", "GAP"], 0),  # not in the space's choices
        (["C(3,100)", "GAP"], 0),
        (["C(1,64)", "P(4,4)", "C(1,64)", "GAP"], 1),
        (["C(1,64)", "P(2,2)", "FC(1000)", "GAP"], 2),
        (["c(3,64)", "GAP"], 0),
    ],
)
def test_follow_rejects_paths_that_break_a_rule(path: list[str], bad: int | None) -> None:
    with pytest.raises(ValueError):
        SPACE8.follow(path)
    # ... for the intended reason: the prefix before the offending step is allowed
    prefix = path if bad is None else path[:bad]
    states = walk(SPACE8, prefix)
    if bad is None:
        assert not states[-1].terminal
    else:
        assert path[bad] not in after(SPACE8, prefix)


def test_follow_accepts_paths_at_the_limits() -> None:
    assert len(SPACE8.follow(["C(1,64)"] * 12 + ["SM"])) == 14
    assert SPACE8.follow(["C(1,64)", "P(2,2)", "FC(512)", "FC(512)", "GAP"])[-1].kind == "GAP"
    assert SPACE8.follow(["C(5,512)", "P(5,3)", "C(1,64)", "P(2,2)", "SM"])[-2].size == 1
    # FC at representation size 7 (28 -> 14 -> 7), the largest size that allows it
    assert (
        SPACE28.follow(["C(1,64)", "P(2,2)", "C(1,64)", "P(2,2)", "FC(512)", "FC(512)", "SM"])[
            -2
        ].fc_run
        == 2
    )


def test_decode_builds_the_architecture() -> None:
    arch = SPACE8.decode(["C(5,64)", "P(2,2)", "C(3,128)", "FC(256)", "FC(128)", "SM"])
    assert arch == Architecture(
        (
            Layer(Conv(64, 5, 5, 1, 1)),
            Layer(Pool(2, 2)),
            Layer(Conv(128, 3, 3, 1, 1)),
            Layer(FC(256)),
            Layer(FC(128)),
        ),
        10,
    )
    assert str(arch) == "C(64,5,1) P(2,2) C(128,3,1) FC(256) FC(128) SM(10)"

    gap = SPACE32.decode(["C(1,512)", "P(5,3)", "C(3,256)", "GAP"])
    assert gap == Architecture(
        (
            Layer(Conv(512, 1, 1, 1, 1)),
            Layer(Pool(5, 3)),
            Layer(Conv(256, 3, 3, 1, 1)),
            Layer(GAP()),
        )
    )
    assert gap.classes is None
    # SM carries the bound dataset's classes
    hundred = MetaQNNSpace().bind(InputShape(3, 32, 32, 100))
    assert hundred.decode(["C(3,64)", "SM"]).classes == 100


def test_decode_rejects_invalid_paths() -> None:
    with pytest.raises(ValueError):
        SPACE8.decode(["C(1,64)", "P(2,2)", "P(2,2)", "SM"])
    with pytest.raises(ValueError):
        SPACE8.decode(["P(2,2)", "SM"])


# ---------------------------------------------------------------------------- walks and mutations


def check_valid(space: MetaQNNSpace, image: InputShape, path: list[str]) -> None:
    """``follow`` accepts the path, its network passes ``analyze`` (only size limits may trip),
    and the space's representation sizes are the real ones."""
    states = space.follow(path)
    assert 1 <= len(path) <= space.max_depth + 1
    arch = space.decode(path)
    try:
        analysis = analyze(arch, image)
    except ArchError as e:
        assert "parameters" in str(e) or "FLOPs" in str(e), str(e)
        return
    for shape, state in zip(analysis.shapes[1:], states[1:]):
        if state.kind != "SM":
            assert min(shape.height, shape.width) == state.size, (path, state)


def is_mutation_of(space: MetaQNNSpace, new: list[str], old: list[str]) -> bool:
    """``new`` = ``old`` with one layer changed, then ``old``'s layers kept as long as the rules
    allow, closed by one termination if it was cut short."""
    for i in range(min(len(new), len(old))):
        if new[i] != old[i]:
            break
    else:
        return False
    if new[:i] != old[:i]:
        return False
    rest = new[i + 1 :]
    if rest == old[i + 1 : i + 1 + len(rest)]:
        return True
    return bool(rest) and rest[-1] in TERMINATIONS and rest[:-1] == old[i + 1 : i + len(rest)]


IMAGES = [
    DIGITS,
    MNIST,
    CIFAR,
    InputShape(3, 32, 32, 100),
    InputShape(1, 20, 12, 5),
    InputShape(1, 4, 4, 2),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    image=st.sampled_from(IMAGES),
    max_depth=st.sampled_from([1, 3, 12]),
)
def test_random_paths_and_mutations_are_valid(seed: int, image: InputShape, max_depth: int) -> None:
    space = MetaQNNSpace(max_depth=max_depth).bind(image)
    rng = random.Random(seed)
    path = space.random_path(rng)
    check_valid(space, image, path)
    for _ in range(5):
        new = space.mutate(path, rng)
        assert new != path
        assert is_mutation_of(space, new, path), (path, new)
        check_valid(space, image, new)
        path = new


def test_random_path_is_reproducible_and_covers_the_layer_types() -> None:
    a = [SPACE28.random_path(random.Random(s)) for s in range(300)]
    assert a == [SPACE28.random_path(random.Random(s)) for s in range(300)]
    seen = {step.split("(")[0] for p in a for step in p}
    assert seen == {"C", "P", "FC", "GAP", "SM"}
    assert len({" ".join(p) for p in a}) > 250
    assert max(len(p) for p in a) == 13  # some walks reach max_depth


def test_mutate_keeps_what_fits_and_closes_what_does_not() -> None:
    rng = random.Random(0)
    path = ["C(3,64)", "P(2,2)", "C(3,128)", "FC(256)", "FC(128)", "SM"]
    results = [SPACE8.mutate(path, rng) for _ in range(400)]
    changed_at = set()
    for new in results:
        assert new != path
        assert is_mutation_of(SPACE8, new, path)
        SPACE8.follow(new)
        changed_at.add(next(i for i, (x, y) in enumerate(zip(new, path)) if x != y))
    assert changed_at == set(range(len(path)))  # any layer may change, the termination too
    # changing the pool to P(5,3) (size 2) keeps C(3,..)? no: 3 > 2, so the path is closed there
    cut = [n for n in results if n[1] == "P(5,3)"]
    assert cut and all(len(n) == 3 and n[2] in TERMINATIONS for n in cut)
    # changing the first conv keeps the whole rest
    first = [n for n in results if n[0] != "C(3,64)" and n[0].startswith("C")]
    assert first and all(n[1:] == path[1:] for n in first)


def test_validate_rejects_bad_settings() -> None:
    from controller_service.spaces import SpaceError

    MetaQNNSpace().validate()
    for bad, name in (
        (dict(max_depth=0), "max_depth"),
        (dict(max_fc=9), "max_fc"),
        (dict(conv_sizes=()), "conv_sizes"),
        (dict(fc_units=(128, 128)), "fc_units"),
        (dict(pools=()), "pools"),
        (dict(pools=((0, 1),)), "pool"),
        (dict(fc_max_size=0), "fc_max_size"),
    ):
        with pytest.raises(SpaceError, match=name):
            MetaQNNSpace(**bad).validate()
