"""The eager Tensor: runs each primitive's numpy kernel now and records a BackwardNode."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import numpy as np

from staticgraph.ops import Primitive, Surface, dtypes
from staticgraph.ops.indexing import parse_index
from staticgraph.ops.primitives import P
from staticgraph.runtime.numpy_table import NUMPY

from . import autograd
from ._format import format_tensor
from .grad_mode import is_grad_enabled, no_grad
from .nodes import AccumulateGrad, BackwardNode, Node, RemovableHandle, node_class

_NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
    "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. "
    "If you access the non-leaf Tensor by mistake, make sure you access the leaf Tensor "
    "instead. See github.com/pytorch/pytorch/pull/30531 for more information.")


_NON_LEAF_FLAG = "you can only change requires_grad flags of leaf variables."
_DETACH_HINT = (" If you want to use a computed variable in a subgraph that doesn't require "
                "differentiation use var_no_grad = var.detach().")


class device:
    """Where a tensor lives: eager has the CPU only (``torch.device``'s form)."""

    def __init__(self, type: str = "cpu") -> None:
        _check_device(type)
        self.type = "cpu"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, device) and other.type == self.type

    def __hash__(self) -> int:
        return hash(self.type)

    def __str__(self) -> str:
        return self.type

    def __repr__(self) -> str:
        return f"device(type={self.type!r})"


def _check_device(which: Any) -> None:
    if str(which).split(":")[0] != "cpu":
        raise RuntimeError(f"eager computes on the CPU only (with numpy), not on {which!r}; "
                           "for a GPU, build the graph and run it with "
                           "sg.Session(backend='opencl')")


CPU = device("cpu")


class Tensor(Surface):
    """A numpy array with PyTorch's autograd: ``requires_grad``, ``grad_fn``, ``.grad``."""

    __slots__ = ("_data", "_requires_grad", "_grad_fn", "_grad", "_retains_grad", "_version",
                 "_base", "_accumulator", "_hooks", "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        # torch.Tensor(data), the legacy constructor: always the default float dtype
        self._init(np.array(dtypes.as_array(data, dtypes.DEFAULT_FLOAT)), None)
        if requires_grad:
            self.requires_grad_()

    def _init(self, data: np.ndarray, grad_fn: Node | None) -> None:
        self._data, self._grad_fn = data, grad_fn
        self._requires_grad = self._retains_grad = False
        self._grad = self._base = self._accumulator = self._hooks = None
        self._version = [0]  # a box, shared by a tensor and its views

    @classmethod
    def _make(cls, data: np.ndarray, grad_fn: Node | None = None) -> Tensor:
        t = object.__new__(cls)
        t._init(data, grad_fn)
        return t

    # -- what the operator surface needs ---------------------------------------------------
    def _apply(self, prim: Primitive, *inputs: Tensor, grad_name: str | None = None, **params):
        arrays = [t._data for t in inputs]
        try:
            data = prim.kernel(*arrays, **params)
        except (ValueError, TypeError, IndexError) as exc:
            # Let the shape/dtype rule say what was wrong, in torch's words where it has them.
            prim.shape_rule(*inputs, **params)
            prim.dtype_rule(*inputs, **params)
            raise type(exc)(str(exc)) from None  # the kernel's own words, no numpy traceback
        dtype = prim.dtype_rule(*inputs, **params)
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        if data.dtype != dtype:
            data = data.astype(dtype)
        out = Tensor._make(data)
        if NUMPY[prim].views and np.may_share_memory(data, arrays[0]):
            base = inputs[0]  # a view: it shares memory and the version counter
            out._base = base if base._base is None else base._base
            out._version = base._version
        # Only floating-point results carry gradients (a cast to int ends the history).
        if prim.vjps is not None and data.dtype.kind == "f" and is_grad_enabled():
            positions = prim.differentiable_positions(len(inputs))
            edges = tuple(inputs[i]._gradient_edge() for i in positions)
            if any(e is not None for e in edges):
                out._grad_fn = node_class(grad_name or prim.grad_name)(
                    prim, params, inputs, out, positions, edges)
        return out

    def _gradient_edge(self) -> Node | None:
        """Where a gradient for this tensor goes: its grad_fn, its leaf accumulator, or
        nowhere."""
        if self._grad_fn is not None:
            return self._grad_fn
        return self._grad_accumulator() if self._requires_grad else None

    def _lift(self, value: Any, dtype: np.dtype | None = None) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, Surface):
            raise TypeError(f"cannot use a {type(value).__name__} in an eager expression")
        return Tensor._make(dtypes.as_array(value, dtype))

    def _updated(self, *updates: tuple[Tensor, Any]) -> Tensor:
        """Write each (buffer, new value) now, outside autograd (batch norm's running
        statistics, updated in place as torch's are)."""
        with no_grad():
            for buffer, value in updates:
                buffer.copy_(value)
        return self

    def _uniform_like(self) -> Tensor:
        from .creation import rand  # (creation imports this module)
        return rand(*self.shape, dtype=self.dtype if dtypes.is_floating(self.dtype) else None)

    # -- metadata ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        if not self._data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        if not self._data.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self._data)))

    # -- autograd state ------------------------------------------------------------------------
    @property
    def grad_fn(self) -> Node | None:
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        return self._grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad or self._grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self._grad_fn is not None:
            raise RuntimeError(_NON_LEAF_FLAG + ("" if value else _DETACH_HINT))
        self._set_requires_grad(value, "only Tensors of floating point and complex dtype can "
                                       "require gradients")

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError(_NON_LEAF_FLAG + _DETACH_HINT)
        return self._set_requires_grad(requires_grad, "only Tensors of floating point dtype can "
                                                      "require gradients")

    def _set_requires_grad(self, requires_grad: bool, refusal: str) -> Tensor:
        # torch words this refusal differently in each of the three places it is made
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise RuntimeError(refusal)
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self) -> Tensor | None:
        if self._grad_fn is not None and not self._retains_grad and self._grad is None:
            warnings.warn(_NON_LEAF_GRAD, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None and value.shape != self.shape:
            raise RuntimeError(f"attempting to assign a gradient of size '{list(value.shape)}' "
                               f"to a tensor of size '{list(self.shape)}'. Please ensure that "
                               "the gradient and the tensor are the same size")
        if value is not None and value.dtype != self.dtype:
            raise RuntimeError(
                f"attempting to assign a gradient with dtype "
                f"'{dtypes.torch_name(value.dtype).lower()}' to a tensor with grad_dtype "
                f"'{dtypes.torch_name(self.dtype)}'. The gradient must match the tensor's "
                "grad_dtype (defaults to the tensor's dtype). You can set the tensor's "
                "grad_dtype attribute with a specific dtype, or None to allow any dtype. Set "
                "grad_dtype with caution. Diverging the dtypes of a tensor and its gradient "
                "may break downstream systems that assume they match.")
        self._grad = value

    def retain_grad(self) -> None:
        if self._grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        self._retains_grad = True
        self._grad_fn._retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def _grad_accumulator(self) -> AccumulateGrad:
        node = self._accumulator() if self._accumulator is not None else None
        if node is None:
            node = AccumulateGrad(self)
            self._accumulator = weakref.ref(node)
        return node

    def _accumulate_grad(self, g: Tensor, create_graph: bool) -> None:
        if self._grad is None:
            self._grad = g if create_graph else g.detach()
        elif create_graph:
            self._grad = self._grad + g
        else:
            self._grad._data = self._grad._data + g._data  # keep the object the user holds

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        autograd.backward(self, gradient, retain_graph, create_graph)

    def detach(self) -> Tensor:
        t = Tensor._make(self._data)
        t._version = self._version
        t._base = self if self._base is None else self._base
        return t

    def detach_(self) -> Tensor:
        if self._base is not None:
            raise RuntimeError(
                "Can't detach views in-place. Use detach() instead. If you are using "
                "DistributedDataParallel (DDP) for training, and gradient_as_bucket_view is "
                "set as True, gradients are views of DDP buckets, and hence detach_() cannot "
                "be called on these gradients. To fix this error, please refer to the "
                "Optimizer.zero_grad() function in torch/optim/optimizer.py as the solution.")
        self._grad_fn, self._requires_grad = None, False
        return self

    def register_hook(self, hook: Any) -> RemovableHandle:
        """``hook(grad)`` runs when the gradient with respect to this tensor is computed; a
        value it returns is used instead of that gradient."""
        if self._grad_fn is not None:
            owner = self._grad_fn  # a non-leaf's hook runs before its grad_fn
        elif self._requires_grad:
            owner = self
        else:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        if owner._hooks is None:
            owner._hooks = []
        owner._hooks.append(hook)
        return RemovableHandle(owner._hooks, hook)

    def clone(self) -> Tensor:
        return self._apply(P.cast, self, dtype=self.dtype, grad_name="CloneBackward0")

    # -- conversion ----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def item(self) -> bool | int | float:
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if dtypes.is_floating(self.dtype) or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()))

    def __repr__(self) -> str:
        suffixes = []
        if self._grad_fn is not None:
            suffixes.append(f"grad_fn=<{type(self._grad_fn).__name__}>")
        elif self._requires_grad:
            suffixes.append("requires_grad=True")
        return format_tensor(self._data, suffixes)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"`` formats a one-value tensor's number, as torch does."""
        if self._data.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return str(self)

    # -- device (eager computes on the CPU, with numpy) ---------------------------------------
    @property
    def device(self) -> device:
        return CPU

    def cpu(self) -> Tensor:
        return self

    def to(self, *args: Any, dtype: Any = None, **_: Any) -> Tensor:
        """``to(dtype)``, ``to("cpu")``, ``to("cpu", dtype)`` or ``to(other)``, as torch's
        (non_blocking and copy are accepted and change nothing here)."""
        target = self
        for arg in args:
            if isinstance(arg, Tensor):
                arg = arg.dtype
            if isinstance(arg, (str, device)) and str(arg).split(":")[0] in ("cpu", "cuda",
                                                                             "mps"):
                _check_device(arg)
            else:
                dtype = arg
        return target if dtype is None else super().to(dtype)

    @property
    def data(self) -> Tensor:
        """The same values, outside autograd (as ``detach()``; setting it replaces them)."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    # -- in-place operations -------------------------------------------------------------------
    def _inplace(self, compute, *others: Any, leaf: str = "a leaf Variable",
                 plain: Any = None) -> Tensor:
        """Write ``compute(self)`` into this tensor's memory and bump its version. When
        recording, the tensor's history is rebased on the new op, as torch does; when not,
        ``plain(self)`` (if given) says more cheaply what to write (copy_'s source)."""
        recording = is_grad_enabled() and (
            self.requires_grad or any(getattr(o, "requires_grad", False) for o in others))
        if recording:
            if self._grad_fn is None and self._requires_grad:
                raise RuntimeError(f"{leaf} that requires grad is being used in an in-place "
                                   "operation.")
            if self._base is not None:
                raise RuntimeError(
                    "eager does not support recording in-place operations on a view (PyTorch "
                    "rebases the base tensor's history); use the out-of-place operation")
            before = Tensor._make(self._data.copy(), self._grad_fn)
            before._requires_grad = self._requires_grad
            result = compute(before)
        else:
            with no_grad():
                result = (plain or compute)(self)
        new = np.asarray(result._data if isinstance(result, Tensor) else result)
        if not np.can_cast(new.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"result type {dtypes.torch_name(new.dtype)} can't be cast to "
                               f"the desired output type {dtypes.torch_name(self.dtype)}")
        if not self._data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.")
        np.copyto(self._data, new, casting="same_kind")
        self._version[0] += 1
        if recording:
            if self._retains_grad:  # the retained gradient is now the new node's
                if isinstance(self._grad_fn, BackwardNode):
                    self._grad_fn._retained = None
                if isinstance(result._grad_fn, BackwardNode):
                    result._grad_fn._retained = weakref.ref(self)
            self._grad_fn = result._grad_fn
        return self

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        return self._inplace(lambda t: t + (other * alpha if alpha != 1 else other), other)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        return self._inplace(lambda t: t - (other * alpha if alpha != 1 else other), other)

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(lambda t: t * other, other)

    def div_(self, other: Any) -> Tensor:
        return self._inplace(lambda t: t / other, other)

    def fill_(self, value: bool | int | float) -> Tensor:
        value = value.item() if isinstance(value, Tensor) else value
        return self._inplace(lambda t: t._apply(P.fill, t, value=value),
                             plain=lambda t: value)

    def zero_(self) -> Tensor:
        return self._inplace(lambda t: t._apply(P.fill, t, value=0, grad_name="ZeroBackward0"),
                             plain=lambda t: 0)

    def copy_(self, src: Any) -> Tensor:
        def overwrite(t: Tensor) -> Tensor:
            # where(False, old, src): src's values; old history kept, with a zero gradient
            src_t = t._operand(src)
            return t._apply(P.where, t._lift(np.zeros((), bool)), t, src_t.to(t.dtype),
                            grad_name="CopyBackwards")
        return self._inplace(overwrite, src, plain=lambda t: t._operand(src))

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace(lambda t: t.clamp(min, max))

    def __setitem__(self, index: Any, value: Any) -> None:
        spec, arrays = parse_index(index, lambda item: isinstance(item, Tensor))
        # torch writes through a view (CopySlices) unless the index is only index arrays
        # besides `:` and `...`, which it puts in place (IndexPutBackward0).
        whole = all(e[0] == "ellipsis" or e == ("slice", None, None, None)
                    for e in spec if e[0] != "array")
        name = "IndexPutBackward0" if arrays and whole else "CopySlices"

        def put(t: Tensor) -> Tensor:
            v = t._operand(value, t.dtype) if not isinstance(value, Tensor) else value
            return t._apply(P.index_put, t, v.to(t.dtype), *[t._operand(a) for a in arrays],
                            spec=spec, grad_name=name)
        self._inplace(put, value, leaf="a view of a leaf Variable")

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
