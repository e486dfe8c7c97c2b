"""Networks back to decisions (``spaces.encode``), which warm starts learn from: every
network an agent can propose encodes to decisions that decode to the same network."""

from __future__ import annotations

import random

import pytest

from controller_service.agents.proposals import random_proposal
from controller_service.spaces import MetaQNNSpace, Space, ZophSpace, decode, encode
from nasrl.core.arch import arch_hash, parse
from nasrl.core.datasets import input_shape

SPACES: dict[str, Space] = {
    "zoph": ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16), max_layers=4),
    "zoph-no-skips": ZophSpace(max_layers=3, skip_connections=False),
    "metaqnn": MetaQNNSpace().bind(input_shape("mnist")),
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_encode_inverts_decode(name: str) -> None:
    space = SPACES[name]
    rng = random.Random(0)
    for _ in range(300):
        layers = rng.randint(1, getattr(space, "max_layers", 1))
        p = random_proposal(space, rng, layers)
        decisions = encode(space, p.arch)
        assert arch_hash(decode(space, decisions)) == arch_hash(p.arch)


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("zoph", "C(8,3,1) FC(10)", "layer 2 is not a convolution"),
        ("zoph", "C(8,7,1)", "filter_height 7 is not one of [1, 3, 5]"),
        ("zoph", "C(8,3,1) C(8,3,1)@[0,1]", "reads the image and earlier layers"),
        ("zoph-no-skips", "C(24,3,1) C(24,3,1)@[0]", "no skip connections"),
        ("metaqnn", "P(2,2) GAP", "not allowed after"),
        ("metaqnn", "C(64,3,1) C(64,3,1)@[0]", "chains"),
        ("zoph", "[N=1]" + "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "is a cell network"),
        ("metaqnn", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "holds layer networks"),
    ],
)
def test_networks_outside_a_space_are_named(name: str, text: str, words: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        encode(SPACES[name], parse(text))
    assert words in str(err.value)
