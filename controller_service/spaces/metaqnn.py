"""MetaQNN's search space (Baker et al. 2017): a network is a path of layer states from a start
state to a termination state, under the paper's transition rules.

A state is a layer type with its parameters, its depth and the representation size of its
output (the spatial size; convolutions keep it, pooling shrinks it). The Q-table sees the size
through its bin — (inf, 8], (8, 4], (4, 1] — as in the paper; an FC state also carries how many
FC layers in a row end with it (its successors depend on that count, so the state stays Markov).
Transitions:

* depth i -> i+1 only; at ``max_depth`` only termination; termination (GAP or softmax) from
  any layer state (not from the start: a network has at least one layer);
* convolutions C(receptive field, filters), stride 1, receptive field <= representation size;
* pooling P(size, stride) not right after pooling and not as the first layer (the authors'
  code; ``pool_first`` allows it), window <= representation size;
* fully connected FC(units) only when the representation size is <= ``fc_max_size`` (7: the
  paper's bins (8,4] and (4,1]; the authors' code buckets the size and allows FC from the
  buckets <= 4, i.e. sizes <= 7), at most ``max_fc`` (2) consecutive, each with units <= the
  previous FC's;
* after an FC only another FC or termination.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field, replace

from controller_service.spaces.zoph import SpaceError, check_choices
from nasrl.core.arch import FC, GAP, Architecture, Conv, Layer, Op, Pool, arch_hash, canonical
from nasrl.core.shapes import InputShape

__all__ = ["MetaQNNSpace", "QState", "size_bin", "START"]

BIN_LABELS = ("(inf,8]", "(8,4]", "(4,1]")


def size_bin(size: int) -> int:
    """0 for sizes >= 8, 1 for 4..7, 2 for 1..3 (the paper's (inf,8], (8,4], (4,1])."""
    if size >= 8:
        return 0
    if size >= 4:
        return 1
    return 2


@dataclass(frozen=True)
class QState:
    """One layer state. ``a``/``b``: C = (receptive field, filters), P = (size, stride),
    FC = (units, 0). ``size`` is the representation size after the layer."""

    kind: str  # "start", "C", "P", "FC", "GAP", "SM"
    depth: int
    size: int
    a: int = 0
    b: int = 0
    fc_run: int = 0  # consecutive FC layers ending here

    @property
    def terminal(self) -> bool:
        return self.kind in ("GAP", "SM")

    @functools.cached_property
    def action(self) -> str:
        """The layer this state adds, as the path stores it: "C(3,64)", "P(2,2)", "FC(256)",
        "GAP", "SM"."""
        if self.kind == "C":
            return f"C({self.a},{self.b})"
        if self.kind == "P":
            return f"P({self.a},{self.b})"
        if self.kind == "FC":
            return f"FC({self.a})"
        return self.kind

    @functools.cached_property
    def key(self) -> str:
        """The Q-table's name of the state: layer, depth and size bin; an FC state adds its
        consecutive-FC count ("FC(256)#2@5/(4,1]")."""
        run = f"#{self.fc_run}" if self.kind == "FC" else ""
        return f"{self.action}{run}@{self.depth}/{BIN_LABELS[size_bin(self.size)]}"


START = "start"


@functools.lru_cache(maxsize=1 << 16)
def _actions(space: MetaQNNSpace, s: QState) -> tuple[QState, ...]:
    return space._actions(s)


@dataclass(frozen=True)
class MetaQNNSpace:
    conv_sizes: tuple[int, ...] = (1, 3, 5)
    conv_filters: tuple[int, ...] = (64, 128, 256, 512)
    pools: tuple[tuple[int, int], ...] = ((5, 3), (3, 2), (2, 2))
    fc_units: tuple[int, ...] = (512, 256, 128)
    max_depth: int = 12
    max_fc: int = 2
    fc_max_size: int = 7
    pool_first: bool = False
    image: InputShape = field(default_factory=lambda: InputShape(1, 28, 28, 10))

    name = "metaqnn"

    def validate(self) -> MetaQNNSpace:
        check_choices("conv_sizes", self.conv_sizes, 1, 15)
        check_choices("conv_filters", self.conv_filters, 1, 2048)
        check_choices("fc_units", self.fc_units, 1, 16384)
        if not self.pools:
            raise SpaceError("pools needs at least one (size, stride) pair")
        if len(self.pools) > 64:
            raise SpaceError(f"pools lists {len(self.pools)} pairs; at most 64")
        if len(set(self.pools)) != len(self.pools):
            raise SpaceError(f"pools lists a (size, stride) pair twice: {list(self.pools)[:20]}")
        for size, stride in self.pools:
            if not (1 <= size <= 15 and 1 <= stride <= 8):
                raise SpaceError(f"pool ({size},{stride}) needs size 1..15 and stride 1..8")
        for name, value, low, high in (
            ("max_depth", self.max_depth, 1, 64),
            ("max_fc", self.max_fc, 0, 8),
            ("fc_max_size", self.fc_max_size, 1, 4096),
        ):
            if not low <= value <= high:
                raise SpaceError(f"{name} must be between {low} and {high}, got {value}")
        return self

    def bind(self, image: InputShape) -> MetaQNNSpace:
        """The space for a dataset's input (representation sizes start at its height)."""
        return replace(self, image=image)

    # ------------------------------------------------------------------ transitions

    def start(self) -> QState:
        return QState(START, 0, min(self.image.height, self.image.width))

    def actions(self, s: QState) -> list[QState]:
        """Every state the rules allow after ``s``, in a fixed order (cached: Q-learning asks
        for the same states over and over)."""
        return list(_actions(self, s))

    def _actions(self, s: QState) -> tuple[QState, ...]:
        if s.terminal:
            return ()
        d = s.depth + 1
        out: list[QState] = []
        if s.depth < self.max_depth:
            if s.kind != "FC":
                out += [
                    QState("C", d, s.size, k, f)
                    for k in self.conv_sizes
                    if k <= s.size
                    for f in self.conv_filters
                ]
                if s.kind != "P" and (s.kind != START or self.pool_first):
                    out += [
                        QState("P", d, (s.size - k) // st + 1, k, st)
                        for k, st in self.pools
                        if k <= s.size
                    ]
            run = s.fc_run + 1 if s.kind == "FC" else 1  # the FC run the new layer makes
            if s.size <= self.fc_max_size and run <= self.max_fc:
                limit = s.a if s.kind == "FC" else max(self.fc_units)
                out += [QState("FC", d, 1, u, 0, run) for u in self.fc_units if u <= limit]
        if s.kind != START:
            out += [QState("GAP", d, 1), QState("SM", d, s.size)]
        return tuple(out)

    def follow(self, path: list[str]) -> list[QState]:
        """The states of a path of actions (from ``QState.action``), start state first;
        ValueError if the path breaks a rule."""
        states = [self.start()]
        for step in path:
            options = {a.action: a for a in self.actions(states[-1])}
            if step not in options:
                raise ValueError(f"{step!r} is not allowed after {states[-1].key}")
            states.append(options[step])
        if not states[-1].terminal:
            raise ValueError("a path must end with GAP or SM")
        return states

    # ------------------------------------------------------------------ networks

    def decode(self, path: list[str]) -> Architecture:
        """The network of a path; SM termination adds the explicit SM(classes) suffix."""
        layers: list[Layer] = []
        classes = None
        for s in self.follow(path)[1:]:
            if s.kind == "C":
                layers.append(Layer(Conv(s.b, s.a, s.a, 1, 1)))
            elif s.kind == "P":
                layers.append(Layer(Pool(s.a, s.b)))
            elif s.kind == "FC":
                layers.append(Layer(FC(s.a)))
            elif s.kind == "GAP":
                layers.append(Layer(GAP()))
            else:
                classes = self.image.classes
        return Architecture(tuple(layers), classes)

    def encode(self, arch: Architecture, verify: bool = True) -> list[str]:
        """The path that ``decode`` turns into ``arch`` (for priors given as networks): one
        action per layer, then SM unless the last layer is GAP. ValueError names the first
        layer the rules do not allow at its place. ``verify=False`` skips decoding it back
        (for a network this space produced)."""
        arch = canonical(arch)
        s, path = self.start(), []
        for i, layer in enumerate(arch.layers, start=1):
            if layer.inputs:
                raise ValueError(f"layer {i} has skip connections; MetaQNN networks are chains")
            match = [a for a in self.actions(s) if _same_op(a, layer.op)]
            if not match:
                raise ValueError(
                    f"layer {i} ({type(layer.op).__name__}) is not allowed after "
                    f"{s.key} in this space"
                )
            s = match[0]
            path.append(s.action)
        if not s.terminal:
            ends = [a for a in self.actions(s) if a.kind == "SM"]
            if not ends:
                raise ValueError(f"the network cannot end after {s.key} in this space")
            path.append(ends[0].action)
        if verify and arch_hash(self.decode(path)) != arch_hash(arch):
            raise ValueError("the network does not decode back to itself in this space")
        return path

    def random_path(self, rng: random.Random) -> list[str]:
        """A uniform random walk (epsilon = 1)."""
        s, path = self.start(), []
        while not s.terminal:
            s = rng.choice(self.actions(s))
            path.append(s.action)
        return path

    def mutate(self, path: list[str], rng: random.Random) -> list[str]:
        """Change one layer to another allowed choice and keep the rest where the rules
        still allow it (the first step that no longer fits ends the path with termination)."""
        states = self.follow(path)
        i = rng.randrange(len(path))
        options = [a for a in self.actions(states[i]) if a.action != path[i]]
        if not options:
            return list(path)
        s = rng.choice(options)
        out = path[:i] + [s.action]
        for step in path[i + 1 :]:
            if s.terminal:
                break
            nxt = {a.action: a for a in self.actions(s)}.get(step)
            if nxt is None:
                break
            s = nxt
            out.append(step)
        while not s.terminal:  # close a path cut short with one of the allowed terminations
            ends = [a for a in self.actions(s) if a.terminal]
            s = rng.choice(ends) if ends else rng.choice(self.actions(s))
            out.append(s.action)
        return out


def _same_op(s: QState, op: Op) -> bool:
    """Whether state ``s`` builds the layer ``op`` (see ``MetaQNNSpace.decode``)."""
    if isinstance(op, Conv):
        return (
            s.kind == "C"
            and op.kernel_h == op.kernel_w == s.a
            and op.filters == s.b
            and op.stride_h == op.stride_w == 1
        )
    if isinstance(op, Pool):
        return s.kind == "P" and (op.kernel, op.stride) == (s.a, s.b)
    if isinstance(op, FC):
        return s.kind == "FC" and op.units == s.a
    return isinstance(op, GAP) and s.kind == "GAP"
