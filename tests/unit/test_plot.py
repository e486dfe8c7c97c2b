"""The search plot is a real PNG and the best-so-far line is a running maximum."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from nasrl.cli.plot import best_so_far, plot_search

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_writes_a_png(tmp_path: Path) -> None:
    points = [(i, 0.1 + 0.8 * ((i * 37) % 50) / 50) for i in range(1, 51)]
    path = tmp_path / "search.png"
    backend = matplotlib.get_backend()
    plot_search(points, path, "Q-learning on digits")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000
    assert matplotlib.get_backend() == backend  # no global backend switch


def test_accepts_a_string_path_and_one_point(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    plot_search([(1, 0.5)], str(path), "one child")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_best_so_far_is_the_running_maximum() -> None:
    assert best_so_far([(1, 0.2), (2, 0.5), (3, 0.4)]) == [0.2, 0.5, 0.5]
    assert best_so_far([(1, 0.3), (2, 0.1), (3, 0.7)]) == [0.3, 0.3, 0.7]
    assert best_so_far([]) == []


def test_no_points_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_search([], tmp_path / "empty.png", "empty")
    assert not (tmp_path / "empty.png").exists()


def test_non_finite_accuracy_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="evaluation 2"):
        plot_search([(1, 0.5), (2, float("nan"))], tmp_path / "nan.png", "nan")
