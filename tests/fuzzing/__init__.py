"""Differential random-program fuzzer: "correct under any input".

Each random program is one Python function ``program(F, *inputs)`` written with the shared
operator surface (torch's method names), so the same source runs on ``sg.Node`` (building a
graph), on ``eager.Tensor`` and on ``torch.Tensor``; ``F`` supplies the few free functions of the
mode (``F.softmax``, ``F.cat``, ``F.tensor``, ``F.float64``...), as ``tests/opspecs.py`` does,
and control flow: ``F.cond``, ``F.while_loop`` and ``F.scan`` are staticgraph's (CONTROL nodes
on graph nodes, Python on eager tensors), and a plain-Python equivalent on torch.
The first dimension of the batch inputs is ``None`` in ``sg.placeholder`` and is fed with 0, 1
and several rows, some feeds as non-contiguous views.

Oracles, each run on every program:

  (a) every compiler pipeline on the numpy backend equals ``backend="interpreter", passes=()``
  (b) the graph's values (and ``sg.gradients``, first and second order) equal eager's
  (c) eager equals torch (values, dtypes, shapes, ``requires_grad``, raising or not)
  (d) a result handed to the user is never changed by a later run of the same Session, and
      feeds are never written
  (e) results of one run share no memory with each other, with a feed or with a Variable's
      value, unless the program fetched a true view of it; a result that does share a
      Variable's memory is read-only
  (f) writing into returned arrays never changes later results

Every failure is shrunk (runs, outputs, gradients, ops, inputs, batch size, feed values,
pipeline) while it persists, and printed once per class as standalone Python source.

Modules: ``surface`` (each mode's free functions, known differences from torch), ``programs``
(a program, its inputs and runs), ``generator`` and ``ops_*`` (growing a random program),
``graph`` and ``modes`` (running it as a graph through each pipeline, in eager and in torch),
``failures`` (what a check finds, and its class), ``values`` (oracles a-c), ``memory`` (d-f),
``check`` (one program through every oracle), ``shrink``, ``reproducer``, and ``driver`` (the
loop and the command line, ``python -m tests.fuzz``).
"""
