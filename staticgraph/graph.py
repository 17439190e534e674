"""Define-and-run: a Graph of Nodes. Building a node checks shapes and dtypes with the
primitive's rules and remembers the user's file:line; no number is computed here."""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .ops import Primitive, ShapeError, Surface, dtypes
from .ops.autodiff import toposort
from .ops.callers import user_frame
from .ops.primitives import P
from .ops.shapes import Shape

if TYPE_CHECKING:
    from .session import Session


class Role(enum.Enum):
    """What a node is. Only OP nodes apply a primitive (``node.prim``); passes and runtimes
    test a node's role or its primitive's fields, never a name."""

    PLACEHOLDER = "placeholder"  # fed at run time
    CONSTANT = "constant"        # ``node.value``, fixed when the graph is built
    VARIABLE = "variable"        # state a Session keeps between runs
    OP = "op"                    # a primitive applied to the inputs
    ASSIGN = "assign"            # sets a Variable (inputs: the variable, the new value)
    GROUP = "group"              # runs its inputs, has no value
    FUSED = "fused"              # a fused kernel of a compiled program (``node.fused``)
    CONTROL = "control"          # cond, while loop or scan over subgraphs (``node.control``)
    OUTPUT = "output"            # one result of a fused kernel or of control flow
                                 # (``params["index"]``)


SOURCES = (Role.PLACEHOLDER, Role.CONSTANT, Role.VARIABLE)  # where values come from

def user_location() -> str:
    """``file:line`` of the first frame outside this framework: where the user built a node."""
    frame, _ = user_frame()
    if frame is None:
        return "<unknown>"
    path = frame.f_code.co_filename
    try:
        relative = os.path.relpath(path)
        path = relative if not relative.startswith("..") else path
    except ValueError:
        pass
    return f"{path}:{frame.f_lineno}"


class GraphError(ValueError):
    """A graph was built or used inconsistently (mixing graphs, unknown names...)."""


class Node(Surface):
    """One value of a graph: the output of an op on other nodes. Operators and methods (the
    shared surface, torch names) build more nodes."""

    __slots__ = ("graph", "role", "prim", "inputs", "params", "shape", "dtype", "name",
                 "location", "value", "trainable", "origin", "fused", "control", "__weakref__")
    _surface_priority = 1  # node + eager tensor: the tensor becomes a constant

    def __init__(self, graph: Graph, role: Role, inputs: tuple[Node, ...], params: dict,
                 shape: Shape, dtype: np.dtype, name: str, prim: Primitive | None = None,
                 value: np.ndarray | None = None, trainable: bool = False,
                 location: str | None = None, origin: Node | None = None,
                 fused: Any = None, control: Any = None) -> None:
        self.graph, self.role, self.prim, self.inputs = graph, role, prim, inputs
        self.params, self.shape, self.dtype, self.name = params, tuple(shape), dtype, name
        self.value, self.trainable = value, trainable
        self.location = location or user_location()
        # The user's node this one was compiled from (compiled graphs are copies).
        self.origin = origin
        self.fused = fused  # a FUSED node's kernel (staticgraph.program.FusedKernel)
        self.control = control  # a CONTROL node's cond/loop (staticgraph.control.flow)

    @property
    def op(self) -> str:
        """The primitive's name, the control flow's (``while_loop``), or the role of a node
        that applies neither (``placeholder``)."""
        if self.prim is not None:
            return self.prim.name
        return self.control.kind if self.control is not None else self.role.value

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _apply(self, prim: Primitive, *inputs: Node, grad_name: str | None = None, **params):
        graph = self._building_graph(prim.name)
        if graph.enclosing is not None:  # inside a body: what it reads from outside, it captures
            inputs = tuple(graph.capture_outer(x) if x.graph is not graph and graph.sees(x.graph)
                           else x for x in inputs)
        for x in inputs:
            if x.graph is not graph:
                raise GraphError(f"{prim.name}: {x.name!r} belongs to another graph than "
                                 f"{self.name!r}{_body_hint(x, graph)}; built at "
                                 f"{user_location()}")
        location, origin = graph._building_for or (user_location(), None)
        if prim.collective and "order" not in params:
            graph._collectives += 1
            params["order"] = graph._collectives
        shape, dtype = infer(prim, inputs, params, location)
        return graph.add(Node(graph, Role.OP, inputs, params, shape, dtype,
                              graph.unique_name(prim.name), prim, location=location,
                              origin=origin))

    def _lift(self, value: Any, dtype: np.dtype | None = None) -> Node:
        if isinstance(value, Node):
            return value
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # an eager Tensor
            if self.graph.captures is not None:  # sg.trace: read it at each call
                return self.graph.capture(value)
            value = value.detach().numpy()
        return constant(value, dtype, graph=self._building_graph("a constant"))

    def _building_graph(self, what: str) -> Graph:
        """Where an op on this node is built (see ``_graph_for``); never a finished body."""
        graph = _graph_for(self.graph)
        if graph.closed:
            raise GraphError(f"{what} at {user_location()}: {self.name!r} belongs to a finished "
                             f"graph{_body_hint(self, get_default_graph())}")
        return graph

    def _error(self, op: str, kind: type[Exception], message: str) -> Exception:
        return kind(f"{op} at {user_location()}: {message}")

    def detach(self) -> Node:
        """The same value with no gradient flowing back through it (tf.stop_gradient)."""
        return self._apply(P.stop_gradient, self)

    def _updated(self, *updates: tuple[Node, Any]) -> Node:
        """This value, computed only after each (Variable, new value) assign: whatever needs
        it runs the updates too (batch norm's running statistics)."""
        for state, _ in updates:
            if state.role is not Role.VARIABLE:
                raise TypeError(f"running statistics are updated in training, so "
                                f"{state.name!r} must be a sg.Variable, not a {state.op}; "
                                f"at {user_location()}")
        return self._apply(P.after, self, *(assign(state, value) for state, value in updates))

    def _uniform_like(self) -> Node:
        """Uniform numbers drawn in each run from the key the Session feeds (its seed and a
        run counter): one stream per call, so two dropouts draw differently."""
        graph = self.graph
        graph._streams += 1
        return self._apply(P.uniform_like, self, graph.random_key(), stream=graph._streams)

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth value of graph node {self.name!r} (built at {self.location}) is not "
            "known until the graph runs: Python `if`/`while` cannot depend on it. Use "
            "sg.cond(pred, true_fn, false_fn) for a data-dependent branch, "
            "sg.while_loop(cond, body, loop_vars) for a data-dependent loop, sg.where for an "
            "elementwise choice, or run the Python function eagerly.")

    def __len__(self) -> int:
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of {self.name!r}, whose first dimension is not known")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- TF1's ways to run one node ------------------------------------------------------------
    def eval(self, feed_dict: Any = None, session: Session | None = None) -> Any:
        """This node's value in ``session`` (default: the default Session, as ``with
        sg.Session() as sess:`` makes it): TF1's ``tensor.eval()``."""
        from .session import session_or_default  # (which imports this module)
        return session_or_default(session, "evaluate tensor using `eval()`", "eval").run(
            self, feed_dict)

    def run(self, feed_dict: Any = None, session: Session | None = None) -> None:
        """Run this node (an update, a group) in ``session`` for its effect: TF1's
        ``op.run()``."""
        from .session import session_or_default
        session_or_default(session, "execute operation using `run()`", "run").run(
            self, feed_dict)

    def __repr__(self) -> str:
        return (f"<sg.Node {self.name!r} op={self.op} shape={_shape_str(self.shape)} "
                f"dtype={self.dtype.name}>")


def infer(prim: Primitive, inputs: tuple[Node, ...], params: dict,
          where: str) -> tuple[Shape, np.dtype]:
    """Shape and dtype of ``prim`` on ``inputs`` by its rules; a mismatch raises naming the op,
    the inputs and ``where`` (the user's line that built the node)."""
    try:
        return prim.shape_rule(*inputs, **params), prim.dtype_rule(*inputs, **params)
    except (ValueError, TypeError, IndexError, RuntimeError) as exc:
        described = ", ".join(f"{x.name} {_shape_str(x.shape)} {x.dtype.name}" for x in inputs)
        raise type(exc)(f"{prim.name} at {where}: {exc} (inputs: {described})") from None


def _graph_for(graph: Graph) -> Graph:
    """Where an op on values of ``graph`` is built: the body being built (sg.cond,
    sg.while_loop, sg.scan), when ``graph`` encloses it; else ``graph`` itself."""
    building = get_default_graph()
    return building if building.enclosing is not None and building.sees(graph) else graph


def _body_hint(node: Node, graph: Graph) -> str:
    """What to say of ``node`` used in ``graph``, when it is a control-flow body's value."""
    if node.graph.enclosing is not None and not graph.sees(node.graph):
        return (" (it was built inside a control-flow body: use it inside the body's function, "
                "or return it from the body)")
    return ""


def _shape_str(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class Graph:
    """A program built first and run later: nodes in the order they were built (which is a
    topological order), each with a unique name."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self._by_name: dict[str, Node] = {}
        self._counters: dict[str, itertools.count] = {}
        self._scopes: list[str] = []
        self.seed: int | None = None  # the graph-level random seed (TF1's tf.set_random_seed)
        self._random_key: Node | None = None
        self._streams = 0
        self._collectives = 0  # MPI collectives built so far: their order on every rank
        # (location, origin) for nodes built by a pass on behalf of an earlier graph's node
        self._building_for: tuple[str, Node | None] | None = None
        # While sg.trace builds this graph: the eager tensors the function reads (a module's
        # weights), each a placeholder fed with the tensor's value at every call.
        self.captures: dict[int, tuple[Any, Node]] | None = None
        # The graph a control-flow body is built inside (None at the top level), and whether
        # the body is finished (it then takes no more nodes).
        self.enclosing: Graph | None = None
        self.closed = False

    def sees(self, graph: Graph) -> bool:
        """``graph`` is this graph or one it is built inside (a body sees its enclosing
        graphs' nodes)."""
        g: Graph | None = self
        while g is not None:
            if g is graph:
                return True
            g = g.enclosing
        return False

    def capture(self, tensor: Any) -> Node:
        """The placeholder standing for an eager tensor a traced function reads."""
        entry = self.captures.get(id(tensor))
        if entry is None:
            node = placeholder(tensor.shape, tensor.dtype, name="captured", graph=self)
            entry = self.captures[id(tensor)] = (tensor, node)
        return entry[1]

    def random_key(self) -> Node:
        """The placeholder random draws read (int64 (seed, run)): a Session feeds it at each
        run unless the feed_dict does."""
        if self._random_key is None:
            self._random_key = placeholder((2,), np.int64, name="random_key", graph=self)
        return self._random_key

    # -- building ------------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        """Append ``node`` (built on nodes of this graph, named with ``unique_name``)."""
        self._nodes.append(node)
        self._by_name[node.name] = node
        return node

    def unique_name(self, base: str) -> str:
        """``matmul``, then ``matmul_1``, ``matmul_2``... within the current name scope."""
        base = "/".join(self._scopes + [base])
        if base not in self._by_name:
            return base
        counter = self._counters.setdefault(base, itertools.count(1))
        while (name := f"{base}_{next(counter)}") in self._by_name:
            pass
        return name

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """``with g.as_default():`` makes ``g`` the graph new nodes go to."""
        _stack().append(self)
        try:
            yield self
        finally:
            _stack().pop()

    @contextlib.contextmanager
    def building_for(self, location: str, origin: Node | None) -> Iterator[None]:
        """Nodes built inside (with the surface, as a decomposition does) stand for another
        graph's node: they take its ``location`` (errors name the user's line) and
        ``origin``."""
        self._building_for = (location, origin)
        try:
            yield
        finally:
            self._building_for = None

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[str]:
        """Prefix ``name/`` to the names of nodes built inside; a name ending in "/" (what
        an enclosing scope yields, plus "/") is that scope again, from the top, as in TF1."""
        enclosing = self._scopes
        if name.endswith("/"):
            self._scopes = [name[:-1]] if name[:-1] else []
        else:
            self._scopes = [*enclosing, name]
        try:
            yield "/".join(self._scopes)
        finally:
            self._scopes = enclosing

    # -- looking ---------------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, name: str) -> Node:
        """The node named ``name``; TF1's tensor name ``name:0`` (a node's one output)
        names it too."""
        node = self._by_name.get(name)
        if node is None and name.endswith(":0"):
            node = self._by_name.get(name[:-2])
        if node is None:
            raise GraphError(f"no node named {name!r} in this graph")
        return node

    @property
    def variables(self) -> list[Node]:
        return [n for n in self._nodes if n.role is Role.VARIABLE]

    @property
    def trainable_variables(self) -> list[Node]:
        return [n for n in self.variables if n.trainable]

    def listing(self) -> str:
        """One line per node: name, op, inputs, shape, dtype and where it was built."""
        rows = [(n.name, n.op, ", ".join(i.name for i in n.inputs), _shape_str(n.shape),
                 n.dtype.name, n.location) for n in self._nodes]
        header = ("name", "op", "inputs", "shape", "dtype", "built at")
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        return "\n".join(fmt.format(*r) for r in [header] + rows)

    __str__ = listing

    def to_networkx(self):
        """A networkx DiGraph: one vertex per node (by name) with op/shape/dtype attributes."""
        import networkx as nx
        g = nx.DiGraph()
        for n in self._nodes:
            g.add_node(n.name, op=n.op, shape=n.shape, dtype=n.dtype.name, location=n.location)
            g.add_edges_from((i.name, n.name) for i in n.inputs)
        return g

    def to_dot(self, nodes: Sequence[Node] | None = None) -> str:
        """Graphviz text (render with ``dot -Tpng``); a fused kernel of a compiled graph is
        drawn as a cluster of the primitives inside it."""
        chosen = self._nodes if nodes is None else list(nodes)
        names = {n.name for n in chosen}
        lines = ["digraph staticgraph {", "  rankdir=TB;", '  node [fontname="Helvetica"];']
        for n in chosen:
            if n.role is Role.FUSED:
                lines += n.fused.dot_cluster(n.name, [i.name for i in n.inputs])
                continue
            shape = "ellipse" if n.role in SOURCES else "box"
            label = f"{n.name}\\n{n.op} {_shape_str(n.shape)} {n.dtype.name}"
            lines.append(f'  "{n.name}" [label="{label}", shape={shape}];')
        for n in chosen:
            if n.role is Role.FUSED:
                continue
            for i in n.inputs:
                if i.name not in names:
                    continue
                if i.role is Role.FUSED:  # an output of a fused kernel: from its member
                    source = i.fused.dot_member(i.name, n.params["index"])
                    lines.append(f'  "{source}" -> "{n.name}";')
                else:
                    lines.append(f'  "{i.name}" -> "{n.name}";')
        return "\n".join(lines + ["}"])


_local = threading.local()


def _stack() -> list[Graph]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


_global_graph = Graph()


def get_default_graph() -> Graph:
    """The innermost ``as_default()`` graph, else the process-wide default graph."""
    stack = _stack()
    return stack[-1] if stack else _global_graph


def reset_default_graph() -> None:
    global _global_graph
    _global_graph = Graph()


def name_scope(name: str):
    """``with sg.name_scope("layer1"):`` prefixes the names of nodes built inside."""
    return get_default_graph().name_scope(name)


def _source(role: Role, shape: Shape, dtype: np.dtype, name: str | None, graph: Graph | None,
            **kwargs: Any) -> Node:
    graph = graph if graph is not None else get_default_graph()
    if graph.enclosing is not None and role is not Role.CONSTANT:
        raise GraphError(f"a {role.value} cannot be created inside a control-flow body (at "
                         f"{user_location()}): create it outside sg.cond / sg.while_loop / "
                         "sg.scan, and read it inside")
    return graph.add(Node(graph, role, (), {}, shape, dtype,
                          graph.unique_name(name or role.value), **kwargs))


def placeholder(shape: Sequence[int | None], dtype: Any = "float32", name: str | None = None,
                graph: Graph | None = None) -> Node:
    """A value fed at run time; ``None`` marks a dimension known only then."""
    shape = tuple(None if d is None else int(d) for d in shape)
    if any(d is not None and d < 0 for d in shape):
        raise ShapeError(f"placeholder shape {shape} has a negative dimension")
    return _source(Role.PLACEHOLDER, shape, dtypes.as_dtype(dtype), name, graph)


def constant(value: Any, dtype: Any = None, name: str | None = None,
             graph: Graph | None = None) -> Node:
    """A value fixed when the graph is built (dtype inferred as ``eager.tensor`` does)."""
    array = np.array(dtypes.as_array(value, dtype))  # a copy: later changes to `value` don't leak
    array.flags.writeable = False  # shared by every run: nothing may write into it
    return _source(Role.CONSTANT, array.shape, array.dtype, name, graph, value=array)


def Variable(initial_value: Any, name: str | None = None, trainable: bool | None = None,
             dtype: Any = None, graph: Graph | None = None) -> Node:
    """State that lives in a Session between runs, starting from ``initial_value`` (an array,
    or a node computed from constants alone: ``sg.Variable(sg.zeros([10]))``, as TF1 writes).
    ``trainable`` (what ``minimize`` updates) defaults to whether it is floating point: an
    integer has no gradient, so it cannot be trained (torch refuses it too)."""
    if isinstance(initial_value, Node):
        graph = graph if graph is not None else initial_value.graph
        initial_value = _value_when_built(initial_value, name or "variable")
    array = np.array(dtypes.as_array(initial_value, dtype))
    array.flags.writeable = False
    floating = dtypes.is_floating(array.dtype)
    if trainable and not floating:
        raise TypeError(f"Variable {name or 'variable'!r} of dtype {array.dtype.name} at "
                        f"{user_location()} cannot be trainable: only floating point Variables "
                        "have gradients (give a float initial value, or trainable=False)")
    trainable = floating if trainable is None else trainable
    return _source(Role.VARIABLE, array.shape, array.dtype, name, graph, value=array,
                   trainable=trainable)


def _value_when_built(node: Node, variable: str) -> np.ndarray:
    """The value of ``node``, which must depend on constants alone, computed now."""
    from .runtime.interpreter import evaluate  # (which imports this module)
    steps = toposort([node], lambda n: n.inputs)
    source = next((n for n in steps if n.role not in (Role.CONSTANT, Role.OP)), None)
    if source is not None:
        raise GraphError(f"the initial value of Variable {variable!r} at {user_location()} "
                         f"depends on {source.op} {source.name!r}: it must be computable when "
                         "the Variable is built (from constants), not when the graph runs")
    values: dict[Node, np.ndarray] = {}
    evaluate(steps, values, {})
    return values[node]


def variables_initializer(variables: Sequence[Node], name: str = "init") -> Node:
    """An op that sets each of ``variables`` back to its initial value (TF1's initializer).
    A Session starts every Variable there anyway; this op starts it over."""
    graph = variables[0].graph if variables else get_default_graph()
    assigns = tuple(assign(v, _source(Role.CONSTANT, v.shape, v.dtype, f"{v.name}/initial_value",
                                      graph, value=v.value))  # (shares the read-only array)
                    for v in variables)
    return graph.add(Node(graph, Role.GROUP, assigns, {}, (), dtypes.bool_,
                          graph.unique_name(name)))


def global_variables_initializer() -> Node:
    """``variables_initializer`` of every Variable of the default graph."""
    return variables_initializer(get_default_graph().variables)


def assign(variable: Node, value: Any) -> Node:
    """An op that, when run, sets ``variable`` to ``value``; fetching it gives the new value.
    Updates are applied only when the whole run succeeds."""
    if not isinstance(variable, Node) or variable.role is not Role.VARIABLE:
        raise TypeError(f"assign needs a Variable, got {variable!r}")
    value = variable._operand(value, variable.dtype)
    if value.graph is not variable.graph or get_default_graph().enclosing is not None:
        raise GraphError(f"assign at {user_location()}: {variable.name!r} cannot be assigned "
                         "inside a control-flow body (sg.cond, sg.while_loop, sg.scan): a "
                         "body computes values; return the new value and assign it outside")
    check_assigned_shape(variable, value.shape, user_location(), ShapeError)
    graph = variable.graph
    return graph.add(Node(graph, Role.ASSIGN, (variable, value), {}, variable.shape,
                          variable.dtype, graph.unique_name("assign")))


def check_assigned_shape(variable: Node, shape: Shape, where: str,
                         error: type[Exception]) -> None:
    """A value of ``shape`` fits ``variable`` (a size not known yet fits any), else ``error``:
    when the graph is built, and again when the run's shapes are known."""
    fits = len(shape) == len(variable.shape) and all(
        a is None or b is None or a == b for a, b in zip(shape, variable.shape))
    if not fits:
        raise error(f"assign at {where}: value of shape {_shape_str(shape)} for variable "
                    f"{variable.name!r} of shape {_shape_str(variable.shape)}")


def group(*nodes: Node, name: str | None = None) -> Node:
    """One op that runs all of ``nodes`` (e.g. every update of a training step)."""
    if not nodes:
        raise ValueError("group() needs at least one node")
    graph = nodes[0].graph
    return graph.add(Node(graph, Role.GROUP, tuple(nodes), {}, (), dtypes.bool_,
                          graph.unique_name(name or "group")))
