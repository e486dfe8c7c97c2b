"""The Zoph-space supernet (weight sharing): a child's slice is the standalone network
``builder.build`` makes, with the same logits; a training step moves only the shared entries
the child reads, their momentum included; children outside the space are refused."""

from __future__ import annotations

import random

import pytest
import torch

from nasrl.core.arch import GAP, ArchError, Architecture, Conv, Layer, Pool, parse
from nasrl.core.builder import build
from nasrl.core.shapes import InputShape
from nasrl.core.supernet import ZophBounds, ZophSupernet
from nasrl.core.supernet_train import SharedSGD, evaluate, train_child

IMAGE = InputShape(2, 9, 8, 5)  # rectangular, two channels, odd height
BOUNDS = ZophBounds(max_kernel=5, max_filters=6, max_layers=4)

pytestmark = pytest.mark.usefixtures("one_thread")


def random_child(rng: random.Random, bounds: ZophBounds = BOUNDS) -> Architecture:
    """Any kernel up to the maximum (even and non-square ones too), strides 1-3, any filter
    count, and skips from a random non-empty set of earlier outputs in a random order; one
    layer in five a max pool or global average pool of one earlier output."""
    layers = []
    for i in range(1, rng.randint(1, bounds.max_layers) + 1):
        if rng.random() < 0.2:
            op: Conv | Pool | GAP = GAP() if rng.random() < 0.3 else Pool(2, rng.randint(1, 2))
            layers.append(Layer(op, (rng.randrange(i),)))
            continue
        op = Conv(
            rng.randint(1, bounds.max_filters),
            rng.randint(1, bounds.max_kernel),
            rng.randint(1, bounds.max_kernel),
            rng.randint(1, 3),
            rng.randint(1, 3),
        )
        layers.append(Layer(op, tuple(rng.sample(range(i), rng.randint(1, i)))))
    arch = Architecture(tuple(layers))
    try:
        ZophSupernet(IMAGE, bounds).plan(arch)
    except ArchError:  # a pool on a map already below 2x2: draw again
        return random_child(rng, bounds)
    return arch


def batch(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IMAGE.channels, IMAGE.height, IMAGE.width, generator=g)
    return x, torch.randint(0, IMAGE.classes, (n,), generator=g)


def trained_supernet(steps: int = 6, seed: int = 0) -> tuple[ZophSupernet, SharedSGD]:
    """A supernet after a few steps of random children: running statistics and momentum
    are no longer their initial values, so slicing them is tested too."""
    torch.manual_seed(seed)
    net = ZophSupernet(IMAGE, BOUNDS)
    opt = SharedSGD(dict(net.named_parameters()), lr=0.05)
    rng = random.Random(seed)
    for step in range(steps):
        train_child(net, net.plan(random_child(rng)), *batch(seed=step), opt)
    return net, opt


def test_slices_give_the_standalone_networks_logits() -> None:
    net, _ = trained_supernet()
    rng = random.Random(1)
    x, _ = batch(seed=99)
    children = [random_child(rng) for _ in range(25)]
    children.append(parse("C(6,5,1) C(6,5,1)@[0,1] C(6,5,1)@[2,1,0] C(6,5,1)@[3,0,2,1]"))
    children.append(parse("C(4,3,1) P(2,2) C(6,3,1) GAP"))  # MetaQNN-like, pools and GAP
    assert any(len(c.layers) > 1 and len(c.layers[-1].inputs) > 1 for c in children)
    assert sum(isinstance(la.op, Pool) for c in children for la in c.layers) >= 3
    net.eval()
    for arch in children:
        plan = net.plan(arch)
        child = build(arch, IMAGE)
        child.load_state_dict(child_state := net.child_state_dict(plan))
        child.eval()
        assert set(child_state) == set(child.state_dict())
        torch.testing.assert_close(net(x, plan), child(x), rtol=1e-5, atol=1e-5)


def test_training_in_train_mode_matches_the_standalone_network_too() -> None:
    """Same loss in train mode (batch statistics), so a step trains the child it names."""
    net, _ = trained_supernet()
    arch = parse("C(4,3,2) C(6,1x5,1)@[0,1]")
    plan = net.plan(arch)
    child = build(arch, IMAGE)
    child.load_state_dict(net.child_state_dict(plan))
    x, _ = batch()
    net.train()
    child.train()
    torch.testing.assert_close(net(x, plan), child(x), rtol=1e-5, atol=1e-5)


def _mask(shape: torch.Size, index: object) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[index if index is not None else ...] = True  # type: ignore[index]
    return mask


def test_a_step_moves_only_the_childs_entries_and_their_momentum() -> None:
    net, opt = trained_supernet(steps=20)
    arch = parse("C(3,3x1,2) C(2,1,1)@[0]")  # layers 3 and 4 unused; skip from the image
    plan = net.plan(arch)
    used = net.used(plan)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    momentum = {k: v.clone() for k, v in opt.buffers.items()}
    assert all(b.abs().sum() > 0 for b in momentum.values())  # every entry moved before
    train_child(net, plan, *batch(seed=5), opt)
    after = net.state_dict()
    for name, p in net.named_parameters():
        mask = _mask(p.shape, used[name]) if name in used else torch.zeros_like(p, dtype=torch.bool)
        assert torch.equal(after[name][~mask], before[name][~mask]), name
        assert torch.equal(opt.buffers[name][~mask], momentum[name][~mask]), name
        if mask.any():
            assert not torch.equal(after[name][mask], before[name][mask]), name
    for i, f in ((0, 3), (1, 2)):  # running statistics: the child's channels only
        for stat in ("running_mean", "running_var"):
            key = f"bns.{i}.{stat}"
            assert not torch.equal(after[key][:f], before[key][:f])
            assert torch.equal(after[key][f:], before[key][f:])
    for i in (2, 3):
        assert torch.equal(after[f"bns.{i}.running_mean"], before[f"bns.{i}.running_mean"])


def test_training_lowers_the_childs_loss_and_evaluates() -> None:
    torch.manual_seed(0)
    net = ZophSupernet(IMAGE, BOUNDS)
    opt = SharedSGD(dict(net.named_parameters()), lr=0.05)
    plan = net.plan(parse("C(6,3,1) C(6,3,1)"))
    x, y = batch(32)
    losses = [train_child(net, plan, x, y, opt) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert evaluate(net, plan, x, y) > 0.5


def test_its_size_is_known_before_it_is_allocated() -> None:
    net = ZophSupernet(IMAGE, BOUNDS)
    assert ZophSupernet.size(IMAGE, BOUNDS) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "text",
    ["C(7,3,1)", "C(4,7,1)", "C(4,3,1) FC(8)", "C(1,1,1) " * 5, "C(4,1,1) C(4,1,1) P(2,2)@[1,2]"],
)
def test_children_outside_the_space_are_refused(text: str) -> None:
    net = ZophSupernet(IMAGE, BOUNDS)
    with pytest.raises(ArchError):
        net.plan(parse(text))
