"""The PyTorch builder agrees with the shape analysis, and every analysable graph runs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from nasrl.core.arch import FC, GAP, ArchError, Architecture, Conv, Layer, Op, Pool, parse
from nasrl.core.builder import ChildNet, build, count_params, gather, same_padding
from nasrl.core.shapes import Analysis, InputShape, analyze

MNIST = InputShape(1, 28, 28, 10)
DIGITS = InputShape(1, 8, 8, 10)
CIFAR = InputShape(3, 16, 12, 7)


pytestmark = pytest.mark.usefixtures("one_thread")


def images(image: InputShape, n: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, image.channels, image.height, image.width, generator=g)


def layer_output_shapes(model: ChildNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The real shape (without batch) of every node: the image, then each block's output."""
    seen: list[tuple[int, ...]] = [tuple(x.shape[1:])]
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
        for block in model.blocks
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def analysed_shapes(a: Analysis) -> list[tuple[int, ...]]:
    return [(s.channels, s.height, s.width) for s in a.shapes]


def flops_of(model: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def check_against_analysis(text: str | Architecture, image: InputShape) -> ChildNet:
    arch = parse(text) if isinstance(text, str) else text
    a = analyze(arch, image)
    model = build(arch, image).eval()
    x = images(image)
    with torch.no_grad():
        assert layer_output_shapes(model, x) == analysed_shapes(a)
        assert count_params(model) == a.params
        assert flops_of(model, x) == a.flops
        assert model(x).shape == (1, image.classes)
    return model


# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [
        (28, 3, 1, (1, 1)),
        (28, 4, 1, (1, 2)),
        (28, 3, 2, (0, 1)),
        (27, 3, 2, (1, 1)),
        (7, 3, 3, (1, 1)),
        (7, 1, 3, (0, 0)),
        (1, 15, 1, (7, 7)),
        (5, 3, 8, (0, 0)),
        (5, 7, 8, (1, 1)),
    ],
)
def test_same_padding(size: int, kernel: int, stride: int, padding: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == padding
    padded = size + sum(padding)
    assert (padded - kernel) // stride + 1 == -(-size // stride)


def test_gather_pads_smaller_maps_centred_with_zeros() -> None:
    big = torch.ones(1, 2, 4, 5)
    small = torch.full((1, 1, 2, 2), 7.0)
    out = gather([big, small], (0, 1))
    assert out.shape == (1, 3, 4, 5)
    assert torch.equal(out[0, :2], big[0])
    expected = torch.zeros(4, 5)
    expected[1:3, 1:3] = 7.0  # dh = 2 -> 1 above, 1 below; dw = 3 -> 1 left, 2 right
    assert torch.equal(out[0, 2], expected)


def test_gather_single_input_is_that_input() -> None:
    t = torch.randn(2, 3, 4, 4)
    assert gather([torch.zeros(1), t], (1,)) is t


# ---------------------------------------------------------------------------- every op


@pytest.mark.parametrize(
    ("text", "image"),
    [
        ("C(8,3,1)", MNIST),
        ("C(8,5,1)", MNIST),
        ("C(8,4,1)", MNIST),  # even kernel: asymmetric padding
        ("C(8,3,2)", MNIST),
        ("C(8,3,2)", InputShape(1, 27, 27, 10)),
        ("C(8,3,3)", InputShape(1, 7, 7, 10)),
        ("C(8,1,3)", InputShape(1, 7, 7, 10)),
        ("C(8,3x5,1x2)", MNIST),
        ("C(8,1x7,3x1)", MNIST),
        ("C(8,15,1)", InputShape(1, 1, 1, 10)),
        ("C(8,3,8)", InputShape(1, 5, 5, 10)),
        ("C(4,3x5,2x3)", CIFAR),
        ("P(2,2)", MNIST),
        ("P(3,2)", DIGITS),
        ("P(5,3)", MNIST),
        ("P(2,2)", InputShape(1, 7, 7, 10)),
        ("P(3,1)", CIFAR),
        ("FC(32)", MNIST),
        ("FC(5)", CIFAR),
        ("GAP", MNIST),
        ("GAP", CIFAR),
        ("C(12,3,1) GAP FC(7) GAP", MNIST),
        ("C(64,3,1) P(2,2) C(128,3x5,1x2)@[0,2] FC(16) GAP SM(7)", CIFAR),
    ],
)
def test_built_shapes_params_and_flops_match_analysis(text: str, image: InputShape) -> None:
    check_against_analysis(text, image)


def test_conv_block_is_conv_batchnorm_relu_without_bias() -> None:
    block = build(parse("C(8,3,1)"), MNIST).blocks[0]
    assert isinstance(block, torch.nn.Sequential)
    assert [type(m).__name__ for m in block] == ["ZeroPad2d", "Conv2d", "BatchNorm2d", "ReLU"]
    assert block[1].bias is None
    out = block(images(MNIST, 2))
    assert (out >= 0).all()


# ---------------------------------------------------------------------------- skip connections

SKIPS = "C(16,3,2) C(16,3,1)@[0] C(8,5,2)@[0,1,2] FC(32)@[1] GAP@[3]"


def test_skip_graph_matches_analysis() -> None:
    model = check_against_analysis(SKIPS, MNIST)
    assert model.heads == (4, 5)
    assert model.classifier.in_features == 32 + 8


def test_skip_graph_trains() -> None:
    torch.manual_seed(0)
    model = build(parse(SKIPS), MNIST).train()
    x = images(MNIST, 4)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # every block gets a gradient (all of them reach the classifier)
    for i, block in enumerate(model.blocks):
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"block {i + 1}"
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert torch.isfinite(loss)


def test_build_rejects_what_analyze_rejects() -> None:
    with pytest.raises(ArchError, match="layer 5"):
        build(parse("C(8,3,1) P(2,2) P(2,2) P(2,2) P(2,2)"), DIGITS)
    with pytest.raises(ArchError, match="filters"):
        build(parse("C(1000000000,3,1)"), MNIST)


# ---------------------------------------------------------------------------- random graphs


@st.composite
def small_graphs(draw: st.DrawFn) -> Architecture:
    """Small random graphs, mostly valid: small kernels and strides, skip lists mostly over
    existing layers, with a few out-of-range inputs, oversized pools and SM mismatches."""
    n = draw(st.integers(1, 8), label="layers")
    kernels = st.sampled_from([1, 1, 2, 3, 3, 3, 5])
    strides = st.sampled_from([1, 1, 1, 1, 2, 2, 3])
    ops: dict[str, st.SearchStrategy[Op]] = {
        "C": st.builds(Conv, st.integers(1, 16), kernels, kernels, strides, strides),
        "P": st.builds(Pool, st.sampled_from([2, 2, 2, 1, 3]), st.sampled_from([2, 2, 1, 3])),
        "FC": st.builds(FC, st.integers(1, 32)),
        "GAP": st.just(GAP()),
    }
    kinds = st.sampled_from(["C", "C", "C", "C", "P", "FC", "GAP"])
    layers = []
    for i in range(1, n + 1):
        op = draw(ops[draw(kinds)])
        skips = st.lists(st.integers(0, i - 1), min_size=1, max_size=4, unique=True)
        inputs = tuple(draw(st.one_of(st.just([]), skips)))  # () = the previous layer
        layers.append(Layer(op, inputs))
    if draw(st.sampled_from([False] * 15 + [True]), label="corrupt inputs"):
        # out of range, a forward reference or a duplicate somewhere
        i = draw(st.integers(1, n))
        bad = tuple(draw(st.lists(st.integers(-1, n + 1), min_size=1, max_size=3)))
        layers[i - 1] = Layer(layers[i - 1].op, bad)
    classes = draw(st.sampled_from([None] * 8 + [10] * 3 + [3]))
    return Architecture(tuple(layers), classes)


def analysable(arch: Architecture, image: InputShape) -> Analysis | None:
    try:
        return analyze(arch, image)
    except ArchError:
        return None


def check_random_graph(arch: Architecture, image: InputShape) -> None:
    a = analysable(arch, image)
    if a is None:
        with pytest.raises(ArchError):
            build(arch, image)
        return
    torch.manual_seed(0)
    model = build(arch, image)
    assert count_params(model) == a.params
    x = images(image, 2)
    model.train()
    logits = model(x)
    assert logits.shape == (2, image.classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert model.classifier.weight.grad is not None
    assert torch.isfinite(model.classifier.weight.grad).all()
    model.eval()
    with torch.no_grad():
        assert layer_output_shapes(model, x) == analysed_shapes(a)
        flops = flops_of(model, x)
        logits = model(x)
    assert flops == 2 * a.flops
    assert logits.shape == (2, image.classes)
    assert torch.isfinite(logits).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_graphs())
def test_random_graphs_build_and_run_on_digits(arch: Architecture) -> None:
    check_random_graph(arch, DIGITS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_graphs())
def test_random_graphs_build_and_run_on_mnist(arch: Architecture) -> None:
    check_random_graph(arch, MNIST)


@pytest.mark.parametrize("image", [DIGITS, MNIST], ids=["digits", "mnist"])
def test_most_random_graphs_are_valid(image: InputShape) -> None:
    """The property tests above are not vacuous: on a fixed sample most graphs analyse, and
    the valid ones include concatenations of several inputs and several classifier heads."""
    outcomes: list[Analysis | None] = []

    @settings(
        max_examples=300, derandomize=True, database=None, phases=[Phase.generate], deadline=None
    )
    @given(small_graphs())
    def sample(arch: Architecture) -> None:
        outcomes.append(analysable(arch, image))

    sample()
    valid = [a for a in outcomes if a is not None]
    assert len(outcomes) >= 200
    share = len(valid) / len(outcomes)
    assert share >= 0.5, f"only {share:.0%} of {len(outcomes)} sampled graphs are valid"
    assert share < 1.0, "the sample never exercises the invalid branch"
    assert sum(any(len(ins) > 1 for ins in a.inputs) for a in valid) >= len(valid) // 4
    assert sum(len(a.classifier_inputs) > 1 for a in valid) >= len(valid) // 4


def test_warm_up_runs_the_flop_counter_on_a_tiny_network() -> None:
    from trainer_service.train import warm_up

    # C(4,3,1) on 1x8x8: 4*8*8*9*2 = 4,608; FC(4) on 4x4x4: 64*4*2 = 512; the classifier 4*10*2
    assert warm_up(torch.device("cpu")) == 4608 + 512 + 80
