"""``tf.train``: TF1's optimizers over ``sg.optim`` (the same update formulas) and its Saver
over ``Session.save`` / ``restore``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ... import optim
from ...graph import Node, assign, get_default_graph, group
from ...session import Session


class _GlobalStep:
    """TF1's ``global_step``: a Variable that the update op also increments."""

    def minimize(self, loss: Node, global_step: Node | None = None,
                 var_list: Sequence[Node] | None = None) -> Node:
        return _counted(super().minimize(loss, var_list), global_step)

    def apply_gradients(self, grads_and_vars: Sequence[tuple[Node | None, Node]],
                        global_step: Node | None = None) -> Node:
        return _counted(super().apply_gradients(grads_and_vars), global_step)


def _counted(update: Node, global_step: Node | None) -> Node:
    if global_step is None:
        return update
    return group(update, assign(global_step, global_step + 1), name="minimize")


class GradientDescentOptimizer(_GlobalStep, optim.SGD):
    def __init__(self, learning_rate: float) -> None:
        super().__init__(learning_rate)


class MomentumOptimizer(_GlobalStep, optim.SGD):
    """accumulation = momentum * accumulation + gradient; variable -= lr * accumulation
    (torch's SGD with momentum, the same formula)."""

    def __init__(self, learning_rate: float, momentum: float, use_nesterov: bool = False) -> None:
        super().__init__(learning_rate, momentum=momentum, nesterov=use_nesterov)


class AdamOptimizer(_GlobalStep, optim.Adam):
    """Adam with torch's formula, which adds ``epsilon`` after the bias correction; TF1's adds
    it before (its "epsilon hat"): the steps differ by a term of the order of epsilon."""

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8) -> None:
        super().__init__(learning_rate, (beta1, beta2), epsilon)


class Saver:
    """Checkpoints of ``var_list`` (default: every Variable when the Saver is made), one
    ``.npz`` file at exactly the path given (TF1 writes several files beside it)."""

    def __init__(self, var_list: Sequence[Node] | None = None, max_to_keep: int = 5) -> None:
        if isinstance(var_list, Mapping):
            raise TypeError("Saver(var_list=dict) would rename the variables in the checkpoint;"
                            " staticgraph saves each under its own name: give a list")
        self.var_list = list(var_list) if var_list is not None else \
            get_default_graph().variables
        if not self.var_list:
            raise ValueError("No variables to save")
        self.max_to_keep = max_to_keep
        self.last_checkpoints: list[str] = []

    def save(self, sess: Session, save_path: str, global_step: Any = None) -> str:
        """Write the checkpoint (``save_path-<step>`` with a global step); returns its path.
        Beyond ``max_to_keep`` checkpoints, the oldest this Saver wrote is deleted."""
        if global_step is not None:
            step = sess.run(global_step) if isinstance(global_step, Node) else global_step
            save_path = f"{save_path}-{int(step)}"
        sess.save(save_path, self.var_list)
        self.last_checkpoints = [p for p in self.last_checkpoints if p != save_path]
        self.last_checkpoints.append(save_path)
        if self.max_to_keep and len(self.last_checkpoints) > self.max_to_keep:
            os.remove(self.last_checkpoints.pop(0))
        return save_path

    def restore(self, sess: Session, save_path: str) -> None:
        sess.restore(save_path, self.var_list)


__all__ = ["GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer", "Saver"]
