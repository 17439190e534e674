"""Pictures for the report: line plots with matplotlib, graph drawings with Graphviz's
``dot`` when it is installed, else with matplotlib. Without matplotlib (the ``plots`` extra)
every function says what it skipped and returns None; the text report does not need them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import networkx as nx

SKIPPED: list[str] = []


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def available() -> bool:
    return _pyplot() is not None


def lines(path: Path, title: str, series: dict[str, Sequence[float]], xlabel: str,
          ylabel: str, log: bool = False, x: Sequence[float] | None = None) -> Path | None:
    """One line per named series, over ``x`` (log-scaled with ``log``) or 1, 2, 3..."""
    plt = _pyplot()
    if plt is None:
        SKIPPED.append(f"{path.name} (needs matplotlib: pip install -e '.[plots]')")
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = [("-", 2.4), ("--", 1.6), (":", 1.6), ("-.", 1.2)]  # identical curves stay visible
    for (name, values), (style, width) in zip(series.items(), styles):
        ax.plot(range(1, len(values) + 1) if x is None else x, values, style, label=name,
                linewidth=width)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if log:
        ax.set_yscale("log")
        if x is not None:
            ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars(path: Path, title: str, values: dict[str, float], ylabel: str) -> Path | None:
    plt = _pyplot()
    if plt is None:
        SKIPPED.append(f"{path.name} (needs matplotlib: pip install -e '.[plots]')")
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(values), list(values.values()), color=["#4c72b0", "#dd8452", "#55a868",
                                                        "#c44e52"][:len(values)])
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stacked_bars(path: Path, title: str, stacks: dict[str, dict[str, float]],
                 ylabel: str) -> Path | None:
    """One bar per name, stacked from its parts (the same parts, in order, in every bar)."""
    plt = _pyplot()
    if plt is None:
        SKIPPED.append(f"{path.name} (needs matplotlib: pip install -e '.[plots]')")
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottoms = [0.0] * len(stacks)
    parts = list(next(iter(stacks.values()), {}))
    for part, color in zip(parts, ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]):
        heights = [bar[part] for bar in stacks.values()]
        ax.bar(list(stacks), heights, bottom=bottoms, label=part, color=color)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def graph(path: Path, dot_source: str, title: str) -> Path | None:
    """Draw Graphviz text: with ``dot`` if installed, else a layered matplotlib drawing."""
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tpng", "-o", str(path)], input=dot_source.encode(),
                       check=True)
        return path
    plt = _pyplot()
    if plt is None:
        SKIPPED.append(f"{path.name} (needs Graphviz's dot or matplotlib)")
        return None
    g = _parse_dot(dot_source)
    g.remove_nodes_from([n for n in list(g) if g.nodes[n].get("scalar_constant")])
    for layer, nodes in enumerate(nx.topological_generations(g)):
        for n in nodes:
            g.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=-1)
    height = 1.2 + 0.9 * (1 + max(nx.get_node_attributes(g, "layer").values(), default=0))
    fig, ax = plt.subplots(figsize=(9, min(height, 24)))
    palette = ["#cde0f7", "#f9d9b5", "#cfeacb", "#f3c9cf", "#e2d4f0", "#fbf0b3"]
    clusters = sorted({c for _, c in g.nodes(data="cluster") if c})
    colors = [palette[clusters.index(g.nodes[n]["cluster"]) % len(palette)]
              if g.nodes[n].get("cluster") else "#f2f2f2" for n in g]
    nx.draw_networkx(g, pos, ax=ax, labels={n: g.nodes[n]["label"] for n in g}, font_size=6,
                     node_color=colors, node_shape="s", node_size=900, arrowsize=8,
                     edgecolors="#888888")
    ax.set_title(title + ("\n(one colour per fused kernel; grey: values outside kernels; "
                          "scalar constants not drawn)"
                          if any(g.nodes[n].get("cluster") for n in g) else
                          "\n(scalar constants not drawn)"), fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parse_dot(source: str) -> nx.DiGraph:
    """The subset of DOT our ``to_dot`` writes: nodes with labels, edges, clusters."""
    g = nx.DiGraph()
    cluster = None
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("subgraph"):
            cluster = line.split('"')[1]
        elif line == "}":
            cluster = None
        elif "->" in line:
            a, b = (part.strip().strip(";").strip('"') for part in line.split("->"))
            g.add_edge(a, b)
        elif line.startswith('"') and "[label=" in line:
            name = line.split('"')[1]
            label = line.split('label="')[1].split('"')[0].replace("\\n", "\n")
            g.add_node(name, label=label.split("\n")[-1] if cluster else label.split("\n")[0],
                       cluster=cluster, scalar_constant="constant ()" in label)
    for n in g:
        g.nodes[n].setdefault("label", n)
    return g
