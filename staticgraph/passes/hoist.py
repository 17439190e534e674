"""Loop-invariant code motion: what a loop body computes from values that do not change
between trips (the weights it reads, constants) is computed once, before the loop, and
passed in. An RNN step's ``W.T`` or a broadcast bias then costs one kernel per run, not one
per trip. Only loops hoist (a cond's branch runs at most once: hoisting would run the branch
not taken); nested loops hoist one level per run of the pass, innermost first, since every
pass runs inside bodies before the graph around them."""

from __future__ import annotations

from ..graph import Node, Role
from ..program import Program
from ..control.body import Body
from .dce import eliminate_dead_code
from .rewrite import copy_node, rewrite


def hoist_invariants(graph: Program) -> Program:
    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        if node.role is not Role.CONTROL or not node.control.loop_invariant():
            return None
        control, inputs = node.control, list(inputs)
        bodies = list(control.bodies)
        for index, positions in control.loop_invariant().items():
            hoisted = _hoist(bodies[index], set(positions), inputs, new)
            if hoisted is None:
                continue
            body, values = hoisted
            bodies[index] = body
            inputs += values
            for k, other in enumerate(bodies):  # every body takes the same arguments
                if k != index:
                    bodies[k] = Body(other.params + body.params[len(other.params):],
                                     other.program)
        if len(inputs) == len(node.inputs):
            return None
        return copy_node(new, node, inputs, control=control.with_bodies(bodies))

    return rewrite(graph, rule)


def _hoist(body: Body, positions: set[int], inputs: list[Node],
           outer: Program) -> tuple[Body, list[Node]] | None:
    """``body`` with its invariant values (computed only from the arguments at
    ``positions`` and constants) made arguments, and those values built in ``outer`` from
    ``inputs``; None when nothing is worth hoisting."""
    program = body.program
    argument = {p: i for p, i in zip(
        (n for n in program.nodes if n.role is Role.PLACEHOLDER),
        body.feed_order([n for n in program.nodes if n.role is Role.PLACEHOLDER]))}
    invariant: set[Node] = set()
    for n in program.nodes:
        if n.role is Role.PLACEHOLDER and argument[n] in positions or n.role is Role.CONSTANT \
                or n.role is Role.OP and all(i in invariant for i in n.inputs):
            invariant.add(n)
    users = {i for n in program.nodes if n not in invariant for i in n.inputs}
    frontier = [n for n in program.nodes if n.role is Role.OP and n in invariant
                and (n in users or any(n is o for o in program.outputs))]
    if not frontier:
        return None
    copies: dict[Node, Node] = {}
    for n in program.nodes:  # the invariant values, built before the loop
        if n in invariant and n.role is not Role.PLACEHOLDER:
            copies[n] = copy_node(outer, n, [copies[i] for i in n.inputs])
        elif n in invariant:
            copies[n] = inputs[argument[n]]
    new_params: list[Node] = []
    moved = set(frontier)

    def as_argument(node: Node, new_inputs: tuple[Node, ...], built: Program) -> Node | None:
        if node not in moved:
            return None
        param = built.add(Node(built, Role.PLACEHOLDER, (), {}, node.shape, node.dtype,
                               built.unique_name(f"{node.name}/hoisted"),
                               location=node.location))
        new_params.append(param)
        return param

    replaced = eliminate_dead_code(rewrite(program, as_argument))
    params = body.params + tuple(new_params)
    return Body(params, replaced), [copies[n] for n in frontier]
