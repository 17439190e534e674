"""Running a graph: a Session owns the Variables' values, checks feeds and fetches, plans
the subgraph a set of fetches needs (cached) and runs it atomically."""

from __future__ import annotations

import contextlib
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .compiler import BACKENDS, Compiled
from .files import atomic_write
from .graph import Graph, GraphError, Node, Role, _body_hint, _shape_str, get_default_graph
from .ops.autodiff import toposort
from .passes import DEFAULT_PASSES, check_passes


def _check_fed(fetches: list[Node], fed: set[Node]) -> None:
    needed = toposort(fetches, lambda n: () if n in fed else n.inputs)
    missing = [n for n in needed if n.role is Role.PLACEHOLDER and n not in fed]
    if missing:
        p = missing[0]
        raise GraphError(f"You must feed a value for placeholder {p.name!r} (shape "
                         f"{_shape_str(p.shape)}, {p.dtype.name}) created at {p.location}")


_local = threading.local()


def _default_sessions() -> list[Session]:
    if not hasattr(_local, "sessions"):
        _local.sessions = []
    return _local.sessions


def get_default_session() -> Session | None:
    """The innermost ``with sess:`` / ``sess.as_default()`` Session of this thread, if any
    (what ``node.eval()`` and ``node.run()`` use)."""
    sessions = _default_sessions()
    return sessions[-1] if sessions else None


def session_or_default(session: Session | None, action: str, method: str) -> Session:
    """``session``, else the default one (for ``node.eval()`` and ``node.run()``)."""
    session = session if session is not None else get_default_session()
    if session is None:  # TF1's words
        raise ValueError(f"Cannot {action}: No default session is registered. Use `with "
                         f"sess.as_default()` or pass an explicit session to "
                         f"`{method}(session=sess)`")
    return session


class Session:
    """``sess.run(fetches, feed_dict)``; the Variables' values live here between runs.
    ``with sg.Session(g) as sess:`` makes it the default Session and closes it at the end.

    ``passes`` is the compiler pipeline (``()`` for none; see ``staticgraph.passes``),
    ``backend`` the runtime ("numpy", compiled; "opencl", compiled to OpenCL kernels on
    ``device``: "gpu", "cpu", an index, or None for the first GPU, else the CPU; or
    "interpreter", the reference), ``debug`` checks the graph's invariants after every pass.
    """

    def __init__(self, graph: Graph | None = None, backend: str = "numpy",
                 passes: Sequence[str] = DEFAULT_PASSES, debug: bool = False,
                 device: str | int | None = None, seed: int | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {BACKENDS}")
        if graph is not None and not isinstance(graph, Graph):
            raise TypeError(f"Session's graph must be a Graph (or None: the default graph), "
                            f"got {type(graph).__name__} {graph!r}")
        if device is not None and backend != "opencl":
            raise ValueError(f"device={device!r} is for backend='opencl', not {backend!r}")
        self.graph = graph if graph is not None else get_default_graph()
        self.backend, self.passes, self.debug = backend, check_passes(passes), debug
        self.device = device
        if backend == "opencl":  # fail now, with how to get one, not at the first run
            from .runtime.opencl import get_device
            get_device(device)
        self._values: dict[Node, np.ndarray] = {}
        self._plans: dict[tuple, Compiled] = {}
        self.closed = False
        # Random draws (dropout): run k of a Session seeded s reads the key (s, k), so a
        # seed repeats a whole sequence of runs. Unseeded (here and in the graph), a fresh
        # seed each Session, as TF1's.
        if seed is None:
            seed = self.graph.seed
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        self._runs = 0

    @property
    def random_state(self) -> tuple[int, int]:
        """(seed, runs so far): what the next run's random draws follow. Setting it back (a
        checkpoint restored) makes the runs after it draw as they drew the first time."""
        return self.seed, self._runs

    @random_state.setter
    def random_state(self, state: tuple[int, int]) -> None:
        self.seed, self._runs = (int(v) for v in state)

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """Free the Variables' values and the compiled plans; a closed Session runs nothing."""
        self.closed = True
        self._values, self._plans = {}, {}

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("Attempted to use a closed Session.")  # TF1's words

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Session]:
        """``with sess.as_default():`` makes this the default Session (without closing it)."""
        _default_sessions().append(self)
        try:
            yield self
        finally:
            self._leave_default()

    def _leave_default(self) -> None:
        # Its latest entry: sessions made default for a while (TF1's InteractiveSession)
        # need not leave in the order they came.
        sessions = _default_sessions()
        del sessions[len(sessions) - 1 - sessions[::-1].index(self)]

    def __enter__(self) -> Session:
        _default_sessions().append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._leave_default()
        self.close()

    # -- running -----------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None) -> Any:
        """Values of ``fetches`` (a node, node name, or nested list/tuple/dict of them)."""
        self._check_open()
        flat: list[Node] = []
        rebuild = _flatten(fetches, self._as_fetch, flat)
        feeds = self._feeds(feed_dict or {})
        compiled = self._compiled(flat, feeds)
        outputs, updates = compiled.run(feeds, _LazyVariables(self))
        self._runs += 1
        for array in updates.values():
            if isinstance(array, np.ndarray):  # (an OpenCL run's stay on its device)
                array.flags.writeable = False
        self._values.update(updates)  # only now: a failed run changed nothing
        return rebuild([_fetched(v) for v in outputs])

    def _compiled(self, fetches: list[Node], feeds: dict[Node, np.ndarray]) -> Compiled:
        # The feeds' order does not matter: {a: .., b: ..} and {b: .., a: ..} are one plan.
        key = (tuple(fetches), frozenset((n, a.shape) for n, a in feeds.items()))
        compiled = self._plans.get(key)
        if compiled is None:
            _check_fed(fetches, set(feeds))
            compiled = self._plans[key] = Compiled(
                fetches, {n: a.shape for n, a in feeds.items()}, self.passes, self.backend,
                self.debug, self.device)
        return compiled

    def compiled(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None) -> Compiled:
        """What the compiler makes of these fetches for these feeds' shapes: ``.explain()``,
        ``.specialized`` and ``.graph`` (before and after the passes), ``.memory``,
        ``.executable.source`` (the generated code)."""
        self._check_open()
        flat: list[Node] = []
        _flatten(fetches, self._as_fetch, flat)
        return self._compiled(flat, self._feeds(feed_dict or {}))

    def profile(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None
                ) -> dict[str, float]:
        """Where one run's time goes, by kind of step (backend "opencl"); the run's
        Variable updates are not kept."""
        self._check_open()
        flat: list[Node] = []
        _flatten(fetches, self._as_fetch, flat)
        feeds = self._feeds(feed_dict or {})
        return self._compiled(flat, feeds).profile(feeds, _LazyVariables(self))

    def explain(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None) -> str:
        """Pass by pass: node counts, fused kernels, the memory plan."""
        return self.compiled(fetches, feed_dict).explain()

    def _as_fetch(self, fetch: Any) -> Node:
        if isinstance(fetch, str):
            return self.graph.get(fetch)
        if not isinstance(fetch, Node):
            raise TypeError(f"Fetch argument {fetch!r} has invalid type {type(fetch).__name__}; "
                            "must be a graph node, a node name (str), or a list, tuple or dict "
                            "of them")
        if fetch.graph is not self.graph:
            raise GraphError(f"Fetch {fetch.name!r} (built at {fetch.location}) belongs to "
                             f"another graph than this session's"
                             f"{_body_hint(fetch, self.graph)}")
        return fetch

    def _feeds(self, feed_dict: Mapping[Any, Any]) -> dict[Node, np.ndarray]:
        if not isinstance(feed_dict, Mapping):
            raise TypeError(f"feed_dict must be a dict of {{node or name: value}}, got "
                            f"{type(feed_dict).__name__}")
        feeds = {}
        for key, value in feed_dict.items():
            node = self._as_fetch(key)
            if node.role in (Role.VARIABLE, Role.ASSIGN, Role.GROUP):
                raise GraphError(f"cannot feed {node.op} {node.name!r}; use sess.assign for "
                                 "Variables")
            feeds[node] = _checked_feed(node, value)
        key = self.graph._random_key
        if key is not None and key not in feeds:  # this run's random numbers
            feeds[key] = np.array([self.seed, self._runs], np.int64)
        return feeds

    def compile(self, outputs: Any, inputs: list[Node]) -> Callable[..., Any]:
        """A function of arrays for ``inputs``, returning ``outputs``' values."""
        return Function(self, outputs, inputs)

    # -- variables -------------------------------------------------------------------------------
    def _value(self, variable: Node) -> np.ndarray:
        value = self._values.get(variable)
        if value is None:  # first use: start from the initial value, no initializer ceremony
            value = self._values[variable] = variable.value  # read-only, like every value here
        return value

    def assign(self, variable: Node, value: Any) -> None:
        """Set a Variable's value directly (shape and dtype must match)."""
        self._check_open()
        variable = self._as_fetch(variable)
        if variable.role is not Role.VARIABLE:
            raise TypeError(f"assign needs a Variable, got {variable!r}")
        self._values[variable] = _checked_value(variable, value)

    def save(self, path: str | os.PathLike, variables: Sequence[Node] | None = None) -> None:
        """The values of ``variables`` (default: every Variable of the graph) into an ``.npz``
        file, written whole or not at all."""
        self._check_open()
        arrays = {v.name: np.asarray(self._value(v)) for v in self._variables(variables)}
        with atomic_write(path) as f, zipfile.ZipFile(f, "w") as archive:
            for name, array in arrays.items():  # np.savez would reserve the name "file"
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    def restore(self, path: str | os.PathLike, variables: Sequence[Node] | None = None) -> None:
        """Load the values of ``variables`` (default: every Variable of the graph) saved by
        ``save``; every one is checked before any is changed."""
        self._check_open()
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
                stored = {name: data[name] for name in data.files}
        except (EOFError, zipfile.BadZipFile, ValueError) as exc:  # (numpy's words for junk)
            raise ValueError(f"cannot restore from {os.fspath(path)}: not a checkpoint written "
                             f"by Session.save (an .npz file), or a damaged one "
                             f"({type(exc).__name__}: {exc})") from None
        loaded = {}
        for v in self._variables(variables):
            if v.name not in stored:
                raise KeyError(f"{os.fspath(path)} has no value for variable {v.name!r}")
            loaded[v] = _checked_value(v, stored[v.name])
        self._values.update(loaded)

    def _variables(self, variables: Sequence[Node] | None) -> list[Node]:
        if variables is None:
            return self.graph.variables
        chosen = [self._as_fetch(v) for v in variables]
        for v in chosen:
            if v.role is not Role.VARIABLE:
                raise TypeError(f"save and restore take Variables, got {v!r}")
        return chosen


class _LazyVariables(Mapping):
    """The session's variable values as the interpreter reads them (initialised on use)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __getitem__(self, variable: Node) -> np.ndarray:
        return self._session._value(variable)

    def __iter__(self):
        return iter(self._session.graph.variables)

    def __len__(self) -> int:
        return len(self._session.graph.variables)


class Function:
    """``sg.compile``'s result: call it with arrays for the inputs, get the outputs' values."""

    def __init__(self, session: Session, outputs: Any, inputs: Node | list[Node]) -> None:
        # one input may come without a list (iterating a node would give its rows)
        self.session, self.outputs = session, outputs
        self.inputs = [inputs] if isinstance(inputs, Node) else list(inputs)
        self.graph = session.graph

    def _feeds(self, arrays: tuple) -> dict[Node, Any]:
        if len(arrays) != len(self.inputs):
            raise TypeError(f"this function takes {len(self.inputs)} arrays "
                            f"({', '.join(i.name for i in self.inputs)}), got {len(arrays)}")
        return dict(zip(self.inputs, arrays))

    def __call__(self, *arrays: Any) -> Any:
        return self.session.run(self.outputs, self._feeds(arrays))

    def compiled(self, *arrays: Any) -> Compiled:
        """What the compiler made for arrays of these shapes (see ``Session.compiled``)."""
        return self.session.compiled(self.outputs, self._feeds(arrays))

    def explain(self, *arrays: Any) -> str:
        return self.compiled(*arrays).explain()


def compile(outputs: Any, inputs: Node | list[Node], session: Session | None = None,
            passes: Sequence[str] = DEFAULT_PASSES, backend: str = "numpy",
            device: str | int | None = None) -> Function:
    """The Theano/JAX habit: a callable ``f(*arrays)`` computing ``outputs`` from ``inputs``."""
    graph = _first_node(outputs).graph
    return Function(session or Session(graph, backend, passes, device=device), outputs, inputs)


def _first_node(structure: Any) -> Node:
    found: list[Node] = []
    _flatten(structure, lambda n: n, found)
    nodes = [n for n in found if isinstance(n, Node)]
    if not nodes:
        raise TypeError("compile needs at least one output node")
    return nodes[0]


def _flatten(structure: Any, convert: Callable[[Any], Node], out: list[Node]):
    """Append the leaves of a nested list/tuple/dict to ``out``; return a function that
    rebuilds the same structure from the leaves' values."""
    if isinstance(structure, dict):
        parts = {k: _flatten(v, convert, out) for k, v in structure.items()}
        return lambda values: {k: p(values) for k, p in parts.items()}
    if isinstance(structure, (list, tuple)):
        parts = [_flatten(v, convert, out) for v in structure]
        kind = type(structure)
        if hasattr(structure, "_fields"):  # a namedtuple
            return lambda values: kind(*(p(values) for p in parts))
        return lambda values: kind(p(values) for p in parts)
    index = len(out)
    out.append(convert(structure))
    return lambda values: values[index]


def _checked_feed(node: Node, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if not np.can_cast(array.dtype, node.dtype, "same_kind"):
        raise TypeError(f"Cannot feed value of dtype {array.dtype.name} to {node.op} "
                        f"{node.name!r} of dtype {node.dtype.name} (created at {node.location})")
    _check_no_wrap(array, node, "Cannot feed")
    if len(array.shape) != len(node.shape) or any(
            d is not None and d != a for d, a in zip(node.shape, array.shape)):
        raise ValueError(f"Cannot feed value of shape {array.shape} for {node.op} "
                         f"{node.name!r}, which has shape {_shape_str(node.shape)} (created at "
                         f"{node.location})")
    return array.astype(node.dtype, copy=False)


def _check_no_wrap(array: np.ndarray, node: Node, action: str) -> None:
    """Integers that the node's dtype cannot hold would silently wrap around: refuse them."""
    if array.dtype.kind in "iu" and node.dtype.kind in "iu" and array.size and \
            not np.can_cast(array.dtype, node.dtype, "safe"):
        limits = np.iinfo(node.dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise ValueError(f"{action} values outside [{limits.min}, {limits.max}] to "
                             f"{node.op} {node.name!r} of dtype {node.dtype.name} (created at "
                             f"{node.location}): they would wrap around")


def _checked_value(variable: Node, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != variable.shape:
        raise ValueError(f"value of shape {array.shape} for variable {variable.name!r} of "
                         f"shape {variable.shape}")
    if not np.can_cast(array.dtype, variable.dtype, "same_kind"):
        raise TypeError(f"value of dtype {array.dtype.name} for variable {variable.name!r} of "
                        f"dtype {variable.dtype.name}")
    _check_no_wrap(array, variable, "Cannot assign")
    array = np.array(array, dtype=variable.dtype)
    array.flags.writeable = False  # fetched views of it must not change the session's state
    return array


def _fetched(value: Any) -> Any:
    # The session's own arrays (Variables, new values included) and constants are read-only:
    # hand out copies, also of a view made of one before it was frozen (still writable).
    if isinstance(value, np.ndarray) and not (value.flags.writeable and
                                              _owner(value).flags.writeable):
        return np.array(value)
    return value


def _owner(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory (itself, or the end of its chain of bases)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array
