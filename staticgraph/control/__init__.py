"""Control flow inside graphs: sg.cond, sg.while_loop and sg.scan, their bodies (closed
subgraphs), their meaning (flow.py), and their gradients (grad.py)."""

from .api import cond, scan, while_loop

__all__ = ["cond", "scan", "while_loop"]
