"""What the controller needs to know of each dataset without loading it: the input shape
and the number of classes (trainer_service/data.py has the data itself; a test keeps the two
in step)."""

from __future__ import annotations

from nasrl.core.shapes import InputShape

__all__ = ["DATASET_SHAPES", "input_shape"]

DATASET_SHAPES: dict[str, InputShape] = {
    "digits": InputShape(1, 8, 8, 10),
    "mnist5k": InputShape(1, 28, 28, 10),
    "mnist": InputShape(1, 28, 28, 10),
    "fashion_mnist": InputShape(1, 28, 28, 10),
    "cifar10": InputShape(3, 32, 32, 10),
    "cifar100": InputShape(3, 32, 32, 100),
    "svhn": InputShape(3, 32, 32, 10),
}


def input_shape(name: str) -> InputShape:
    """The shape of a dataset by name; KeyError with the known names otherwise."""
    try:
        return DATASET_SHAPES[name]
    except KeyError:
        raise KeyError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASET_SHAPES))}"
        ) from None
