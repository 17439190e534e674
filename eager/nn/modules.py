"""Parameter, Module and the layers, with torch.nn's bookkeeping, names and printing."""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from staticgraph.ops import dtypes

from ..creation import empty, ones, rand, randn, zeros
from ..grad_mode import no_grad
from ..tensor import Tensor
from . import functional as F


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as one of its parameters; shares ``data``'s
    memory."""

    __slots__ = ()

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        self._init((empty(0) if data is None else data)._data, None)
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__


def _zero_grad(params: Iterable[Tensor], set_to_none: bool) -> None:
    """What Module.zero_grad and Optimizer.zero_grad share, as torch does it."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            if p.grad.grad_fn is not None:  # built with create_graph=True: loses its history
                p.grad.detach_()
            else:
                p.grad.requires_grad_(False)
            p.grad.zero_()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _typename(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _addindent(text: str, spaces: int) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first, *(" " * spaces + line for line in rest)])


# Where a Module keeps its registered members, in torch's names.
_STORES = ("_parameters", "_buffers", "_modules")


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


class Module:
    """Base of all layers: attributes that are Parameters or Modules are registered, as are
    buffers (``register_buffer``), so ``parameters()``, ``state_dict()``, ``to()``,
    ``zero_grad()`` and printing find them."""

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _non_persistent_buffers_set: set[str]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        for store in _STORES:
            object.__setattr__(self, store, {})
        object.__setattr__(self, "_non_persistent_buffers_set", set())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- registration ----------------------------------------------------------------------
    def _register(self, store: str, name: str, value: Any, *, replace: bool = False) -> None:
        """Put ``value`` under ``name`` in ``store``, with torch's checks and messages. An
        assignment (``replace``) first takes the name from whatever else held it."""
        kind = store[1:-1]
        members = self.__dict__.get(store)
        if members is None:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain "."')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if replace:
            self._forget(name, keep=store)
        if name not in members and hasattr(self, name):
            raise KeyError(f"attribute '{name}' already exists")
        members[name] = value

    def _forget(self, name: str, keep: str | None = None) -> None:
        """Remove ``name`` from every store but ``keep``, and from the plain attributes."""
        for store in _STORES:
            if store != keep:
                self.__dict__[store].pop(name, None)
        if keep != "_buffers":
            self._non_persistent_buffers_set.discard(name)
        self.__dict__.pop(name, None)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter "
                            f"'{name}' (eager.nn.Parameter or None required)")
        self._register("_parameters", name, param)

    def register_buffer(self, name: str, tensor: Tensor | None,
                        persistent: bool = True) -> None:
        """Register state that is not a parameter (batch norm's running statistics): it is
        in ``buffers()``, converted by ``to()``, and in ``state_dict()`` if ``persistent``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(eager.Tensor or None required)")
        self._register("_buffers", name, tensor)
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        self._register("_modules", name, module)

    def __setattr__(self, name: str, value: Any) -> None:
        # torch's order: a Parameter or Module value registers (taking the name from a
        # buffer or plain attribute); a registered name only takes its kind, or None.
        for store, kind, what in (("_parameters", Parameter, "parameter"),
                                  ("_modules", Module, "child module")):
            if isinstance(value, kind):
                self._register(store, name, value, replace=True)
                return
            if name in self.__dict__.get(store, ()):
                if value is not None:
                    raise TypeError(f"cannot assign '{_typename(value)}' as {what} '{name}' "
                                    f"(eager.nn.{kind.__name__} or None expected)")
                self.__dict__[store][name] = None
                return
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(eager.Tensor or None expected)")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: registered members live outside __dict__.
        for store in _STORES:
            members = self.__dict__.get(store, {})
            if name in members:
                return members[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if any(name in self.__dict__[store] for store in _STORES):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    # -- traversal -------------------------------------------------------------------------
    def named_modules(self, memo: set[Module] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and all below it, depth first, each once unless told otherwise."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, _join(prefix, name), remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[Module] = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Any]]:
        """The tensors of ``store`` in this module (and those below if ``recurse``), by
        dotted name."""
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        seen: set[int] = set()  # ids: a Tensor's == is elementwise
        for module_prefix, module in modules:
            for name, value in module.__dict__[store].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield _join(module_prefix, name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Every buffer, persistent or not, by dotted name."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def _all_parameters(self, buffers: bool = False) -> Iterator[tuple[str, Module, str, Tensor]]:
        """``(key, module, name, tensor)`` for every parameter, and with ``buffers`` every
        persistent buffer: the state_dict's entries in its order (each module's parameters,
        then its buffers, then its children's); shared modules and tensors appear under each
        of their names, as in torch."""
        for prefix, module in self.named_modules(remove_duplicate=False):
            members = list(module._parameters.items())
            if buffers:
                members += [(name, buffer) for name, buffer in module._buffers.items()
                            if name not in module._non_persistent_buffers_set]
            for name, value in members:
                if value is not None:
                    yield _join(prefix, name), module, name, value

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first, depth first) and then on this
        one, as torch does, e.g. to initialize weights; returns this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- state -----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes them); returns this
        module."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self.parameters(), set_to_none)

    def to(self, dtype: Any) -> Module:
        """Convert the floating-point parameters (and their grads) in place and replace the
        floating-point buffers by converted ones, as torch's ``module.to(dtype)``: the
        Parameter objects stay the same, integer buffers (``num_batches_tracked``) too."""
        dtype = dtypes.as_dtype(dtype)
        if not dtypes.is_floating(dtype):
            raise TypeError("nn.Module.to only accepts floating point or complex dtypes, but "
                            f"got desired dtype=eager.{dtype.name}")
        for param in self.parameters():
            if dtypes.is_floating(param.dtype):
                param._data = param._data.astype(dtype, copy=False)
                if param.grad is not None:
                    param.grad = param.grad.detach().to(dtype)
        for module in self.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None and dtypes.is_floating(buffer.dtype):
                    module._buffers[name] = buffer.to(dtype)
        return self

    def float(self) -> Module:
        return self.to(dtypes.float32)

    def double(self) -> Module:
        return self.to(dtypes.float64)

    def state_dict(self, *, keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Every parameter and persistent buffer by its dotted name; detached (sharing
        memory) unless ``keep_vars``."""
        return OrderedDict((key, value if keep_vars else value.detach())
                           for key, _, _, value in self._all_parameters(buffers=True))

    def load_state_dict(self, state_dict: Mapping[str, Tensor],
                        strict: bool = True) -> _IncompatibleKeys:
        """Copy ``state_dict``'s values into the parameters and persistent buffers, in place;
        with ``strict``, missing or unexpected keys are an error, in torch's words."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        entries = list(self._all_parameters(buffers=True))
        missing = [key for key, *_ in entries if key not in state_dict]
        expected = {key for key, *_ in entries}
        unexpected = [key for key in state_dict if key not in expected]
        errors = []
        with no_grad():
            for key, _, _, param in entries:
                value = state_dict.get(key)
                if value is None:
                    continue
                if value.shape != param.shape:
                    errors.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{value.shape} from checkpoint, the shape in current model "
                                  f"is {param.shape}.")
                else:
                    param.copy_(value)
        if strict:  # torch's order: missing keys, unexpected keys, then the rest
            for kind, keys in (("Unexpected", unexpected), ("Missing", missing)):
                if keys:
                    quoted = ", ".join(f'"{key}"' for key in keys)
                    errors.insert(0, f"{kind} key(s) in state_dict: {quoted}. ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    # -- printing --------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra = extra.split("\n") if extra else []
        children = [f"({name}): {_addindent(repr(module), 2)}"
                    for name, module in self._modules.items()]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        lines = extra + children
        body = "\n  " + "\n  ".join(lines) + "\n" if lines else ""
        return f"{type(self).__name__}({body})"


def _uniform(*shape: int, bound: float) -> Parameter:
    return Parameter(rand(*shape) * (2 * bound) - bound)


class Linear(Module):
    """``y = x @ weight.T + bias``; weight and bias start U(-1/sqrt(in), 1/sqrt(in)), torch's
    kaiming_uniform(a=sqrt(5)) initialization."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = _uniform(out_features, in_features, bound=bound)
        self.register_parameter("bias", _uniform(out_features, bound=bound) if bias else None)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalizes over the last ``len(normalized_shape)`` dimensions; weight starts at ones,
    bias at zeros."""

    def __init__(self, normalized_shape: int | Iterable[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(d) for d in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_parameter(
            "weight", Parameter(ones(*self.normalized_shape)) if elementwise_affine else None)
        self.register_parameter("bias", Parameter(zeros(*self.normalized_shape))
                                if elementwise_affine and bias else None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.elementwise_affine}, bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: ``weight[indices]``, its gradient a scatter-add; starts N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(randn(num_embeddings, embedding_dim))

    def forward(self, input: Tensor) -> Tensor:
        return self.weight[input]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
