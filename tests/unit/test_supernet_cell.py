"""The NAS-Bench-201 cell supernet (one weight set per edge and op): a child's slice is the
cell network ``builder.build`` makes, with the same logits; a step trains only the child's
ops and the shared stem, reductions, head and classifier."""

from __future__ import annotations

import random

import pytest
import torch

from nasrl.core.arch import ArchError, Architecture, parse
from nasrl.core.builder import build
from nasrl.core.cell import CELL_OPS, Cell, CellOp, Skeleton
from nasrl.core.shapes import InputShape
from nasrl.core.supernet_cell import CellSupernet
from nasrl.core.supernet_train import SharedSGD, train_child

IMAGE = InputShape(1, 8, 8, 10)
SKELETON = Skeleton(channels=4, cells_per_stage=2, stages=2)

pytestmark = pytest.mark.usefixtures("one_thread")


def cell(ops: tuple[CellOp, ...]) -> Architecture:
    return Architecture(cell=Cell(ops, SKELETON))


def random_cell(rng: random.Random) -> Architecture:
    return cell(tuple(rng.choice(CELL_OPS) for _ in range(6)))


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def trained(steps: int = 6) -> tuple[CellSupernet, SharedSGD]:
    torch.manual_seed(0)
    net = CellSupernet(IMAGE, SKELETON)
    opt = SharedSGD(dict(net.named_parameters()), lr=0.05)
    rng = random.Random(0)
    for step in range(steps):
        train_child(net, net.plan(random_cell(rng)), *batch(seed=step), opt)
    return net, opt


def test_slices_give_the_cell_networks_logits() -> None:
    net, _ = trained()
    rng = random.Random(3)
    children = [random_cell(rng) for _ in range(10)]
    children += [cell((op,) * 6) for op in CELL_OPS]
    x, _ = batch(seed=42)
    net.eval()
    for arch in children:
        plan = net.plan(arch)
        child = build(arch, IMAGE)
        state = net.child_state_dict(plan)
        assert set(state) == set(child.state_dict())
        child.load_state_dict(state)
        child.eval()
        torch.testing.assert_close(net(x, plan), child(x), rtol=1e-5, atol=1e-5)


def test_a_step_trains_only_the_childs_ops() -> None:
    net, opt = trained()
    C1, C3, N, SKIP = CellOp.NOR_CONV_1X1, CellOp.NOR_CONV_3X3, CellOp.NONE, CellOp.SKIP_CONNECT
    plan = net.plan(cell((C3, N, C1, SKIP, N, C3)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    momentum = {k: v.clone() for k, v in opt.buffers.items()}
    train_child(net, plan, *batch(seed=9), opt)
    after = net.state_dict()
    chosen = {0: "nor_conv_3x3", 2: "nor_conv_1x1", 5: "nor_conv_3x3"}
    moved = 0
    for name in after:
        if ".edges." not in name:
            continue
        edge, op = name.split(".edges.")[1].split(".")[:2]
        same = torch.equal(after[name], before[name])
        if chosen.get(int(edge)) == op:
            moved += not same
        else:
            assert same, name
            if name in momentum:
                assert torch.equal(opt.buffers[name], momentum[name]), name
    assert moved > 0
    for name in ("blocks.0.0.weight", "classifier.weight"):  # stem and classifier: shared
        assert not torch.equal(after[name], before[name])


def test_other_skeletons_and_layer_networks_are_refused() -> None:
    net = CellSupernet(IMAGE, SKELETON)
    with pytest.raises(ArchError):
        net.plan(Architecture(cell=Cell((CellOp.NONE,) * 6, Skeleton(4, 1, 2))))
    with pytest.raises(ArchError):
        net.plan(parse("C(4,3,1)"))
