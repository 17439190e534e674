"""``eager.optim``, as ``torch.optim``: the update formulas are staticgraph's shared ones; a
step writes the new values into the parameters in place, so references to them stay valid."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from staticgraph.ops.optimizers import adagrad_step, adam_step, rmsprop_step, sgd_step

from .creation import zeros_like
from .grad_mode import enable_grad, no_grad
from .nn.modules import _typename, _zero_grad
from .tensor import Tensor

Params = Iterable[Tensor] | Iterable[dict[str, Any]]  # tensors, or param groups of them

_LABELS = {"lr": "learning rate", "momentum": "momentum value", "eps": "epsilon value",
           "weight_decay": "weight_decay value", "alpha": "alpha value",
           "lr_decay": "lr_decay value",
           "initial_accumulator_value": "initial_accumulator_value value"}


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value:
            raise ValueError(f"Invalid {_LABELS[name]}: {value}")


class Optimizer:
    """Holds ``param_groups`` (dicts of "params" and hyperparameters) and per-parameter
    ``state``; subclasses give the update of one parameter in ``_update``."""

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {_typename(params)}")
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        group = {**self.defaults, **param_group,
                 "params": [params] if isinstance(params, Tensor) else list(params)}
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params "
                                f"is {_typename(p)}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: ``state`` by each parameter's position across the groups (its
        tensors by reference, as torch's), ``param_groups`` with positions for params."""
        params = [p for group in self.param_groups for p in group["params"]]
        index = {id(p): k for k, p in enumerate(params)}
        groups = [{**{k: v for k, v in group.items() if k != "params"},
                   "params": [index[id(p)] for p in group["params"]]}
                  for group in self.param_groups]
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the hyperparameters and per-parameter state of ``state_dict`` (from
        ``state_dict()``, here or in a saved file), matched by position."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(mine["params"])
               for g, mine in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        params = {k: p for g, mine in zip(groups, self.param_groups)
                  for k, p in zip(g["params"], mine["params"])}
        self.state = defaultdict(dict)
        for k, saved in state_dict["state"].items():
            param = params[int(k)]
            self.state[param] = {name: value.to(param.dtype).clone() if isinstance(value, Tensor)
                                 else value for name, value in saved.items()}
        for g, mine in zip(groups, self.param_groups):
            mine.update({k: v for k, v in g.items() if k != "params"})

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a ``.grad``; ``closure`` re-evaluates the loss
        first and its value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.copy_(self._update(p, p.grad, self.state[p], group))
        return loss

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> Tensor:
        """The new value of ``param``; updates ``state`` (fresh tensors, never in place)."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, weight decay and
    Nesterov momentum (see ``staticgraph.ops.optimizers.sgd_step``)."""

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False) -> None:
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> Tensor:
        new_param, buf = sgd_step(param, grad, state.get("momentum_buffer"), lr=group["lr"],
                                  momentum=group["momentum"], dampening=group["dampening"],
                                  weight_decay=group["weight_decay"], nesterov=group["nesterov"])
        if group["momentum"] != 0:
            # The first buffer is the gradient itself; own a copy, as zero_grad may zero it.
            state["momentum_buffer"] = buf.clone() if buf is grad else buf
        return new_param


class Adam(Optimizer):
    """Adam, with L2 weight decay added to the gradient (or decoupled, AdamW's) and optional
    AMSGrad (see ``staticgraph.ops.optimizers.adam_step``)."""

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> Tensor:
        if not state:
            state.update(step=0, exp_avg=zeros_like(param), exp_avg_sq=zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_like(param)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new_param, state["exp_avg"], state["exp_avg_sq"], max_exp_avg_sq = adam_step(
            param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"], lr=group["lr"],
            beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            max_exp_avg_sq=state.get("max_exp_avg_sq"),
            decoupled_weight_decay=group["decoupled_weight_decay"])
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = max_exp_avg_sq
        return new_param


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; its default decay is 0.01)."""

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,
                         decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (see
    ``staticgraph.ops.optimizers.rmsprop_step``)."""

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, momentum=momentum,
                           alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> Tensor:
        if not state:
            state["square_avg"] = zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = zeros_like(param)
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros_like(param)
        new_param, state["square_avg"], grad_avg, buffer = rmsprop_step(
            param, grad, state["square_avg"], state.get("grad_avg"),
            state.get("momentum_buffer"), lr=group["lr"], alpha=group["alpha"],
            eps=group["eps"], weight_decay=group["weight_decay"], momentum=group["momentum"])
        if grad_avg is not None:
            state["grad_avg"] = grad_avg
        if buffer is not None:
            state["momentum_buffer"] = buffer
        return new_param


class Adagrad(Optimizer):
    """Adagrad (see ``staticgraph.ops.optimizers.adagrad_step``)."""

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10) -> None:
        _check_nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                           initial_accumulator_value=initial_accumulator_value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> Tensor:
        if not state:
            state.update(step=0, sum=zeros_like(param) + group["initial_accumulator_value"])
        state["step"] += 1
        new_param, state["sum"] = adagrad_step(
            param, grad, state["sum"], state["step"], lr=group["lr"],
            lr_decay=group["lr_decay"], weight_decay=group["weight_decay"], eps=group["eps"])
        return new_param


from . import lr_scheduler  # noqa: E402,F401  (torch's place: eager.optim.lr_scheduler)
