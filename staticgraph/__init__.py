"""staticgraph: define-and-run deep learning on one shared table of primitives.

>>> import staticgraph as sg
>>> g = sg.Graph()
>>> with g.as_default():
...     x = sg.placeholder((2, 2), name="x")
...     out = (3 * (x + 2) * (x + 2)).mean()
...     (dx,) = sg.gradients(out, [x])
>>> sg.Session(g).run(dx, {x: [[1, 1], [1, 1]]}).tolist()
[[4.5, 4.5], [4.5, 4.5]]
"""

from . import nn, ops, optim
from .api import *  # noqa: F403  (sg.exp, sg.sum, sg.softmax, ...)
from .api import __all__ as api_names
from .api import as_node
from .control import cond, scan, while_loop
from .gradients import gradients
from .graph import (Graph, GraphError, Node, Variable, assign, constant, get_default_graph,
                    global_variables_initializer, group, name_scope, placeholder,
                    reset_default_graph, variables_initializer)
from .ops import ShapeError
from .ops.dtypes import DTypeError
from .runtime.fused import get_num_threads, set_num_threads
from .runtime.interpreter import RunError
from .session import Function, Session, compile, get_default_session
from .trace import trace

__version__ = "0.1.0"
__all__ = ["nn", "ops", "optim", "as_node", "gradients", "Graph", "GraphError", "Node", "Variable",
           "assign", "constant", "get_default_graph", "global_variables_initializer", "group",
           "name_scope", "placeholder", "reset_default_graph", "variables_initializer",
           "ShapeError", "DTypeError", "RunError", "Function", "Session", "compile",
           "get_default_session", "trace", "cond", "while_loop", "scan", "get_num_threads",
           "set_num_threads", *api_names]


def __getattr__(name: str):
    # ``sg.onnx`` on first use: importing onnx costs ~0.2 s that graphs alone never need.
    if name == "onnx":
        import importlib
        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'staticgraph' has no attribute {name!r}")
