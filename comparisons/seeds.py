"""The seeds, both ways: every example of the two articles new users start from, run as
eager code and as a static graph, side by side: values, gradients, the tape eager recorded
beside the graph staticgraph built, and a note wherever an article prints something that
PyTorch does not.

The articles are "Understanding Autograd" (Alex Abades Grimes, 2023) and "Getting Started
with PyTorch Part 1" (Ayoosh Kathuria, 2018); their examples are transcribed below."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

import eager
import staticgraph as sg

from . import plots


@dataclass
class Example:
    title: str
    eager_lines: list[str]
    graph_lines: list[str]
    notes: list[str]


def tape(fn, depth: int = 0, seen: set | None = None) -> list[str]:
    """The nodes eager recorded, from the output back to the leaves (``next_functions``)."""
    seen = set() if seen is None else seen
    lines = ["  " * depth + fn.name().removeprefix("torch::autograd::")]
    if id(fn) in seen:
        return [lines[0] + "  (shared, shown above)"]
    seen.add(id(fn))
    for child, _ in fn.next_functions:
        lines += tape(child, depth + 1, seen) if child is not None else \
            ["  " * (depth + 1) + "None (a constant)"]
    return lines


def tape_dot(fn) -> str:
    """The tape eager recorded (``grad_fn`` and its ``next_functions``) as Graphviz text,
    drawn in the direction the gradient flows."""
    lines, seen, stack = ["digraph tape {", "  rankdir=TB;"], set(), [fn]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        name = node.name().removeprefix("torch::autograd::")
        lines.append(f'  "{id(node)}" [label="{name}", shape=box];')
        for child, _ in node.next_functions:
            if child is not None:
                lines.append(f'  "{id(node)}" -> "{id(child)}";')
                stack.append(child)
    return "\n".join(lines + ["}"])


def draw_article_000(out) -> list:
    """Pictures of both graphs of ``out = mean(3 (x + 2)^2)``: the tape eager records, the
    graph staticgraph builds (with its gradient nodes), and what the compiler makes of it."""
    x = eager.ones(2, 2, requires_grad=True)
    y_t = x + 2
    out_t = (y_t * y_t * 3).mean()
    g = sg.Graph()
    with g.as_default():
        xs = sg.placeholder((2, 2), name="x")
        y = xs + 2
        out_n = (y * y * 3).mean()
        (dx,) = sg.gradients(out_n, [xs])
    compiled = sg.Session(g).compiled([out_n, dx], {xs: np.ones((2, 2))})
    return [plots.graph(out / "tape_eager.png", tape_dot(out_t.grad_fn),
                        "eager: the tape out.backward() walks"),
            plots.graph(out / "graph_built.png", g.to_dot(),
                        "staticgraph: the graph built, gradient nodes included"),
            plots.graph(out / "graph_compiled.png", compiled.graph.to_dot(),
                        "after the compiler's passes")]


def graph_listing(g: sg.Graph) -> list[str]:
    return [f"{n.name} = {n.op}({', '.join(i.name for i in n.inputs)})"
            f"  {tuple(n.shape)}" for n in g.nodes]


def _printed(run) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    lines = out.getvalue().rstrip("\n").split("\n")
    return lines + [f"UserWarning: {str(w.message).split('. ')[0]}." for w in caught]


def article_000_first_example() -> Example:
    def run():
        x = eager.ones(2, 2, requires_grad=True)
        print(x)
        y = x + 2
        print(y)
        z = y * y * 3
        out = z.mean()
        print(z)
        print(out)
        out.backward()
        print(x.grad)
        print("tape:")
        print("\n".join(tape(out.grad_fn)))
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((2, 2), name="x")
        y = x + 2
        z = y * y * 3
        out = z.mean()
        (dx,) = sg.gradients(out, [x])
    built = len(g)
    value, grad = sg.Session(g).run([out, dx], {x: np.ones((2, 2))})
    graph_lines = (["graph built before running (forward part):"] + graph_listing(g)[:8] +
                   [f"... sg.gradients added {built - 8} more nodes",
                    f"run: out = {value}", f"     dout/dx = {grad.tolist()}"])
    return Example("Understanding Autograd: out = mean(3 (x + 2)^2)", _printed(run), graph_lines,
                   ["The article prints grad_fn=< AddBackward0 > with spaces inside the "
                    "brackets: that is the web page's formatting; PyTorch, and eager, print "
                    "grad_fn=<AddBackward0>."])


def article_000_exercise() -> Example:
    def run():
        x2 = eager.ones(5, 5, requires_grad=True)
        y2 = x2 + 2
        g2 = y2 * 2
        z2 = y2.sum()
        print(z2, z2.grad)
        z2.backward()
        print(x2.grad[0])
        print(y2.grad)
        print(g2.grad)
        print(z2.grad)
    g = sg.Graph()
    with g.as_default():
        x2 = sg.placeholder((5, 5), name="x2")
        y2 = x2 + 2
        g2 = y2 * 2
        z2 = y2.sum()
        grads = sg.gradients(z2, [x2, y2, g2])
    values = sg.Session(g).run([z2, grads[0], grads[1]], {x2: np.ones((5, 5))})
    graph_lines = graph_listing(g)[:5] + [
        f"run: z2 = {values[0]}", f"dz2/dx2[0] = {values[1][0].tolist()}",
        f"dz2/dy2[0] = {values[2][0].tolist()}", "dz2/dg2 = None (g2 does not lead to z2)"]
    return Example("Understanding Autograd: the exercise (z2 = sum(x2 + 2))", _printed(run),
                   graph_lines,
                   ["The article shows y2.grad filled with 2s after z2.backward(). PyTorch (and "
                    "eager) print None with a UserWarning: y2 is not a leaf and the code never "
                    "calls y2.retain_grad(). Had it, y2.grad would be all 1s (z2 = y2.sum()), "
                    "not 2s; as a graph, dz2/dy2 is all 1s too.",
                    "The article prints 'tensor(...),  None': print() separates with a space, "
                    "no comma."])


def article_001_paths() -> Example:
    values = dict(a=0.3, w1=0.5, w2=-1.5, w3=2.0, w4=0.25)

    def model(a, w1, w2, w3, w4):
        b = w1 * a
        c = w2 * a
        d = w3 * b + w4 * c
        return d.tanh()

    def run():
        t = {k: eager.tensor(v, dtype=eager.float64, requires_grad=True)
             for k, v in values.items()}
        loss = model(**t)
        loss.backward()
        print(f"L = tanh(d) = {loss.item():.6f}")
        print(f"dL/da = {t['a'].grad.item():.6f}")
        print("tape:")
        print("\n".join(tape(loss.grad_fn)))
    g = sg.Graph()
    with g.as_default():
        nodes = {k: sg.placeholder((), "float64", name=k) for k in values}
        loss = model(**nodes)
        (da,) = sg.gradients(loss, [nodes["a"]])
    session = sg.Session(g)
    feed = {nodes[k]: v for k, v in values.items()}
    lv, dav = session.run([loss, da], feed)
    d = 2.0 * 0.5 * 0.3 + 0.25 * -1.5 * 0.3
    paths = (1 - np.tanh(d) ** 2) * (2.0 * 0.5 + 0.25 * -1.5)
    graph_lines = graph_listing(g)[:10] + [
        f"run: L = {lv:.6f}", f"dL/da = {dav:.6f}",
        f"sum over the two paths, by hand: {paths:.6f}"]
    return Example("Getting Started Part 1: b = w1 a, c = w2 a, d = w3 b + w4 c, L = f(d)",
                   _printed(run), graph_lines,
                   ["dL/da is the sum over the paths L-d-b-a and L-d-c-a, as the article says; "
                    "both modes give it, and the hand computation agrees.",
                    "The article was written for PyTorch 0.3: its printed tensors "
                    "('[torch.DoubleTensor of size 4x3]') are that version's format, and its "
                    "np.random.randn((3,5)) is not valid numpy (randn takes separate ints)."])


EXAMPLES = (article_000_first_example, article_000_exercise, article_001_paths)


def side_by_side(left: list[str], right: list[str], width: int = 58) -> list[str]:
    rows = max(len(left), len(right))
    left, right = left + [""] * (rows - len(left)), right + [""] * (rows - len(right))
    header = [f"{'eager (define-by-run)':<{width}} | staticgraph (define-and-run)",
              "-" * width + "-+-" + "-" * width]
    return header + [f"{a[:width]:<{width}} | {b}" for a, b in zip(left, right)]


def run(ctx) -> dict:
    text, markdown = [], []
    for make in EXAMPLES:
        ex = make()
        text += [f"\n-- {ex.title}"] + side_by_side(ex.eager_lines, ex.graph_lines)
        text += [f"  note: {n}" for n in ex.notes]
        markdown += [f"### {ex.title}", "", "| eager (define-by-run) | staticgraph "
                     "(define-and-run) |", "|---|---|"]
        rows = max(len(ex.eager_lines), len(ex.graph_lines))
        for a, b in zip(ex.eager_lines + [""] * rows, ex.graph_lines + [""] * rows):
            if a or b:
                markdown.append(f"| `{a}` | `{b}` |".replace("``", " "))
        markdown += [""] + [f"> {n}" for n in ex.notes] + [""]
    pictures = [p for p in draw_article_000(ctx.out) if p]
    markdown += [f"![{p.stem}]({p.name})" for p in pictures]
    return {"text": "\n".join(text), "markdown": "\n".join(markdown), "data": {}}
