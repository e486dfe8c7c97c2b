"""The learned predictor and the feature vectors it reads, with fixed seeds and scripted
accuracies."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from controller_service.predictor import Predictor, PredictorSettings, acquire
from controller_service.spaces import (
    Decisions,
    MetaQNNSpace,
    Nb201Space,
    Space,
    ZophSpace,
    random_decisions,
)
from controller_service.spaces.features import features, width
from nasrl.core.datasets import input_shape

ZOPH = ZophSpace(filter_sizes=(1, 3), strides=(1, 2), filters=(8, 16), max_layers=3)
METAQNN = MetaQNNSpace(conv_filters=(8, 16), fc_units=(32,), max_depth=4).bind(
    input_shape("mnist5k")
)
NB201 = Nb201Space()


@pytest.mark.parametrize("space", [ZOPH, METAQNN, NB201], ids=lambda s: s.name)
def test_every_network_of_a_space_has_the_same_width(space: Space) -> None:
    rng = random.Random(0)
    for _ in range(30):
        vec = features(space, random_decisions(space, rng, getattr(space, "max_layers", 0)))
        assert vec.shape == (width(space),) and np.isfinite(vec).all()


def test_feature_values_say_what_the_network_is() -> None:
    nb = features(NB201, {"path": ["none", "skip_connect", "none", "none", "none", "none"]})
    assert nb.sum() == 6 and nb[0] == 1 and nb[5 + 1] == 1  # edge 0: none; edge 1: skip
    z = features(ZOPH, {"tokens": [[1, 0, 1, 0, 1]], "skips": [[]]})
    assert list(z[:6]) == [1.0, 3.0, 1.0, 2.0, 1.0, 16.0] and z[-1] == 1.0
    m = features(METAQNN, {"path": ["C(3,16)", "P(2,2)", "SM"]})
    assert list(m[:7]) == [1, 0, 0, 0, 0, 3, 16]  # kind C, receptive field 3, 16 filters
    assert list(m[7:14]) == [0, 1, 0, 0, 0, 2, 2] and m[-1] == 3
    with pytest.raises(ValueError, match="'X\\(1\\)' is not a MetaQNN layer"):
        features(METAQNN, {"path": ["X(1)"]})


def _toy(path: list[str]) -> float:
    """3x3 convolutions help, pooling hurts, plus a little noise-free interaction."""
    convs, pools = path.count("nor_conv_3x3"), path.count("avg_pool_3x3")
    return 0.5 + 0.05 * convs - 0.03 * pools + 0.02 * (path[-1] == "nor_conv_3x3")


def _data(n: int, seed: int) -> tuple[list[Decisions], list[tuple[int, int]], list[float]]:
    rng = random.Random(seed)
    decisions = [random_decisions(NB201, rng, 0) for _ in range(n)]
    sizes = [(1000 + 100 * d["path"].count("nor_conv_3x3"), 10_000) for d in decisions]
    return decisions, sizes, [_toy(d["path"]) for d in decisions]


def test_the_predictor_ranks_unseen_networks() -> None:
    train, test = _data(60, 0), _data(300, 1)
    predictor = Predictor(NB201, seed=0)
    predictor.fit(*train)
    mean, std = predictor.predict(test[0], test[1])
    assert stats.spearmanr(mean, test[2]).statistic > 0.8
    assert (std >= 0).all() and std.max() > 0  # members disagree somewhere


def test_the_same_results_give_the_same_predictor() -> None:
    train, test = _data(40, 2), _data(20, 3)
    a, b = Predictor(NB201, seed=5), Predictor(NB201, seed=5)
    a.fit(*train)
    b.fit(*train)
    assert np.array_equal(a.predict(test[0], test[1])[0], b.predict(test[0], test[1])[0])
    c = Predictor(NB201, seed=6)
    c.fit(*train)
    assert not np.array_equal(a.predict(test[0], test[1])[1], c.predict(test[0], test[1])[1])


def test_bad_use_is_a_clear_error() -> None:
    predictor = Predictor(NB201, settings=PredictorSettings(members=2, trees=5))
    with pytest.raises(RuntimeError, match="has not been fitted"):
        predictor.predict(*_data(2, 0)[:2])
    d, s, a = _data(3, 0)
    with pytest.raises(ValueError, match="at least 2 results"):
        predictor.fit(d[:1], s[:1], a[:1])
    with pytest.raises(ValueError, match="3 networks but 2"):
        predictor.fit(d, s[:2], a)


def test_acquisition_rules() -> None:
    mean, std = np.array([0.5, 0.6, 0.4]), np.array([0.1, 0.0, 0.3])
    assert list(acquire(mean, std, 0.6, "mean")) == [0.5, 0.6, 0.4]
    assert np.allclose(acquire(mean, std, 0.6, "ucb", kappa=2.0), [0.7, 0.6, 1.0])
    ei = acquire(mean, std, 0.6, "ei")
    z = (0.4 - 0.6) / 0.3
    phi, cdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(z / 2**0.5))
    assert ei[2] == pytest.approx(-0.2 * cdf + 0.3 * phi)
    assert ei[1] == pytest.approx(0.0, abs=1e-9) and (ei >= -1e-12).all()
    with pytest.raises(ValueError, match="acquisition must be one of ucb, ei, mean"):
        acquire(mean, std, 0.6, "thompson")
