"""Search spaces: which architectures an agent may propose. ``zoph`` (Zoph & Le 2017's
convolution stacks with skip connections), ``metaqnn`` (Baker et al. 2017's layer-state
paths), ``nb201`` (NAS-Bench-201's cell space) and ``base`` (the ``Space`` type and the operations that work in either). Plain data,
no torch."""

from __future__ import annotations

from controller_service.spaces.base import (
    Decisions,
    PathSpace,
    Space,
    decode,
    encode,
    mutate_decisions,
    random_decisions,
)
from controller_service.spaces.metaqnn import START, MetaQNNSpace, QState, size_bin
from controller_service.spaces.nb201 import EdgeState, Nb201Space
from controller_service.spaces.zoph import ZOPH_DECISIONS, SpaceError, ZophSpace, check_choices

__all__ = [
    "Space",
    "PathSpace",
    "Decisions",
    "decode",
    "encode",
    "random_decisions",
    "mutate_decisions",
    "ZophSpace",
    "ZOPH_DECISIONS",
    "SpaceError",
    "check_choices",
    "MetaQNNSpace",
    "QState",
    "size_bin",
    "START",
    "Nb201Space",
    "EdgeState",
]
