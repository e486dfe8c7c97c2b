"""A child network drawn as SVG: the image, one box per layer (its text form and output
shape), the implied classifier, arrows from each layer's inputs and skip edges as arcs beside
the column. Colours come from ``currentColor`` and CSS classes, so the drawing follows the
page's light or dark theme."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from nasrl.core.arch import ArchError, Architecture, format_op, parse
from nasrl.core.shapes import InputShape, analyze, unconsumed

__all__ = ["Node", "graph_nodes", "architecture_svg"]

BOX_W, BOX_H, GAP_Y = 168, 34, 18
LEFT = 70  # room for classifier arcs on the left
ARC_STEP = 12  # how far each skip arc stands off the column, per layer it jumps


@dataclass(frozen=True)
class Node:
    """Node 0 is the image, 1..n the layers, n+1 the classifier; ``inputs`` are node ids."""

    index: int
    label: str
    shape: str
    inputs: tuple[int, ...]
    kind: str  # input, conv, pool, fc, gap, classifier


def _kind(label: str) -> str:
    return {"C": "conv", "P": "pool", "F": "fc", "G": "gap"}.get(label[:1], "conv")


def graph_nodes(arch: Architecture, image: InputShape | None) -> list[Node]:
    """The nodes of ``arch``'s graph with resolved inputs (Zoph's fixes: no inputs means the
    previous layer; every output nobody reads feeds the classifier), with shapes when the
    input ``image`` is known and the network fits it."""
    shapes: list[str] = [""] * (len(arch.layers) + 1)
    classes = arch.classes
    if image is not None:
        try:
            analysis = analyze(arch, image)
            shapes = [str(s).replace("x", "×") for s in analysis.shapes]
            classes = image.classes
        except ArchError:
            pass  # drawn without shapes
    nodes = [Node(0, "image", shapes[0], (), "input")]
    for i, layer in enumerate(arch.layers, start=1):
        label = format_op(layer.op)
        nodes.append(Node(i, label, shapes[i], layer.inputs or (i - 1,), _kind(label)))
    heads = unconsumed(arch)
    nodes.append(
        Node(
            len(arch.layers) + 1,
            f"SM({classes})" if classes else "SM",
            "",
            heads or (len(arch.layers),),
            "classifier",
        )
    )
    return nodes


def _y(index: int) -> int:
    return 8 + index * (BOX_H + GAP_Y)


def _edge(src: int, dst: int, nodes: list[Node]) -> str:
    x_mid = LEFT + BOX_W // 2
    if dst == src + 1:
        return (
            f'<line class="edge" x1="{x_mid}" y1="{_y(src) + BOX_H}" x2="{x_mid}" '
            f'y2="{_y(dst) - 2}" marker-end="url(#arrow)"/>'
        )
    # a skip: an arc beside the column, further out the further it jumps; into the
    # classifier on the left, between layers on the right
    jump = dst - src
    if nodes[dst].kind == "classifier":
        x_side = LEFT - 10 - ARC_STEP * min(jump, 5)
        x_edge = LEFT
    else:
        x_side = LEFT + BOX_W + 10 + ARC_STEP * min(jump, 8)
        x_edge = LEFT + BOX_W
    y1, y2 = _y(src) + BOX_H // 2, _y(dst) + BOX_H // 2
    return (
        f'<path class="edge skip" d="M{x_edge},{y1} C{x_side},{y1} {x_side},{y2} '
        f'{x_edge + (2 if x_edge == LEFT + BOX_W else -2)},{y2}" marker-end="url(#arrow)"/>'
    )


def _box(node: Node) -> str:
    y = _y(node.index)
    text = escape(node.label)
    shape = f'<tspan class="shape" dx="6">{escape(node.shape)}</tspan>' if node.shape else ""
    return (
        f'<g class="node {node.kind}"><title>{escape(node.label)} {escape(node.shape)}</title>'
        f'<rect x="{LEFT}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        f'<text x="{LEFT + 10}" y="{y + BOX_H // 2 + 5}">{text}{shape}</text></g>'
    )


def architecture_svg(text: str, image: InputShape | None = None) -> str:
    """The SVG drawing of the network ``text`` (raises ArchError for text that is not one)."""
    nodes = graph_nodes(parse(text), image)
    width = LEFT + BOX_W + 10 + ARC_STEP * 8 + 16
    height = _y(len(nodes)) - GAP_Y + 8
    edges = [_edge(src, n.index, nodes) for n in nodes for src in sorted(set(n.inputs))]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="arch-graph" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="graph of {escape(text)}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="currentColor"/></marker></defs>'
        + "".join(edges)
        + "".join(_box(n) for n in nodes)
        + "</svg>"
    )
