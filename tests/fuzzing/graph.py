"""A program as a graph: placeholders and Variables for its inputs, its outputs, gradients and
second-order gradients as fetches, and the feeds of one run."""

from __future__ import annotations

from dataclasses import dataclass

import staticgraph as sg

from .failures import Raised
from .programs import Program, Run, const, cotangent, diff_inputs, dims_at, grad_targets, laid_out
from .surface import GRAPH_F


@dataclass
class GraphBuild:
    graph: object
    nodes: dict      # input name -> node
    labels: list
    fetches: list
    cots: dict       # target name -> placeholder
    dirs: dict       # input name -> placeholder
    error: Raised | None = None


def build_graph(prog: Program) -> GraphBuild:
    g = sg.Graph()
    nodes, labels, fetches, cots, dirs = {}, [], [], {}, {}
    phase = "graph build"
    try:
        with g.as_default():
            for i in prog.inputs:
                if i.variable:
                    nodes[i.name] = sg.Variable(i.init, name=i.name)
                else:
                    nodes[i.name] = sg.placeholder(i.placeholder_shape, i.dtype, name=i.name)
            outs = prog.function()(GRAPH_F, *(nodes[i.name] for i in prog.inputs))
            for n, o in zip(prog.outputs, outs):
                labels.append(("out", n))
                fetches.append(o)
            targets, diffs = grad_targets(prog), diff_inputs(prog)
            if prog.grad and targets and diffs:
                phase = "sg.gradients"
                by_name = dict(zip(prog.outputs, outs))
                for t in targets:
                    shape = tuple(const(d) for d in prog.info[t].shape)
                    cots[t] = sg.placeholder(shape, prog.info[t].dtype, name=f"cot_{t}")
                gs = sg.gradients([by_name[t] for t in targets],
                                  [nodes[i.name] for i in diffs],
                                  grad_ys=[cots[t] for t in targets])
                for i, gv in zip(diffs, gs):
                    if gv is not None:
                        labels.append(("grad", i.name))
                        fetches.append(gv)
                if prog.grad2:
                    s = None
                    for i, gv in zip(diffs, gs):
                        if gv is not None:
                            dirs[i.name] = sg.placeholder(i.placeholder_shape, i.dtype,
                                                          name=f"dir_{i.name}")
                            term = (gv * dirs[i.name]).sum()
                            s = term if s is None else s + term
                    if s is not None:
                        hs = sg.gradients(s, [nodes[i.name] for i in diffs])
                        for i, h in zip(diffs, hs):
                            if h is not None:
                                labels.append(("grad2", i.name))
                                fetches.append(h)
    except Exception as error:  # noqa: BLE001
        return GraphBuild(g, nodes, labels, fetches, cots, dirs, Raised(error, phase))
    return GraphBuild(g, nodes, labels, fetches, cots, dirs)


def graph_feeds(prog: Program, build: GraphBuild, run: Run) -> dict:
    feeds = {}
    for i in prog.inputs:
        if not i.variable:
            feeds[build.nodes[i.name]] = laid_out(run.feeds[i.name].copy(), i.layout)
    for t, node in build.cots.items():
        feeds[node] = cotangent(run, t, dims_at(prog.info[t].shape, run.batch),
                                prog.info[t].dtype)
    for name, node in build.dirs.items():
        inp = next(i for i in prog.inputs if i.name == name)
        feeds[node] = cotangent(run, "dir/" + name, inp.dims(run.batch), inp.dtype)
    return feeds
