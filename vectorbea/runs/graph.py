"""The workflow as a picture: a layered left-to-right layout computed on the server.

Each step goes in the layer after the deepest step it depends on (longest path from an
entry step); within a layer, steps are ordered by the average position of their parents
(one barycentre pass), which keeps most edges from crossing. Coordinates are plain numbers
for an <svg>: no script, no inline style.
"""

from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

from vectorbea.engine.graph import Definition

NODE_WIDTH = 168
NODE_HEIGHT = 44
LAYER_GAP = 64
ROW_GAP = 20
MARGIN = 12
NAME_CHARS = 20


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    label: str  # the name, shortened to fit the box
    kind: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    port: str | None
    path: str  # SVG path data
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def layers_of(definition: Definition) -> list[list[str]]:
    depth: dict[str, int] = {}
    for step_id in definition.topo_order:
        parents = [edge.source for edge in definition.incoming.get(step_id, ())]
        depth[step_id] = 1 + max((depth[p] for p in parents), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step_id in definition.topo_order:
        layers[depth[step_id]].append(step_id)
    position: dict[str, float] = {}
    for layer in layers:
        parents_at = {
            step_id: [
                position[e.source]
                for e in definition.incoming.get(step_id, ())
                if e.source in position
            ]
            for step_id in layer
        }
        order = {step_id: index for index, step_id in enumerate(layer)}
        layer.sort(
            key=lambda s: sum(parents_at[s]) / len(parents_at[s]) if parents_at[s] else order[s]
        )
        for index, step_id in enumerate(layer):
            position[step_id] = index
    return layers


def layout(definition: Definition) -> Layout:
    layers = layers_of(definition)
    tallest = max((len(layer) for layer in layers), default=0)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    nodes: dict[str, Node] = {}
    for column, layer in enumerate(layers):
        column_height = len(layer) * NODE_HEIGHT + (len(layer) - 1) * ROW_GAP
        top = (height - column_height) // 2
        for row, step_id in enumerate(layer):
            step = definition.steps[step_id]
            name = step.name or step_id
            label = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
            nodes[step_id] = Node(
                id=step_id,
                name=name,
                label=label,
                kind=step.kind,
                x=MARGIN + column * (NODE_WIDTH + LAYER_GAP),
                y=top + row * (NODE_HEIGHT + ROW_GAP),
            )
    edges = []
    for edge in definition.edges:
        a, b = nodes[edge.source], nodes[edge.target]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
        x2, y2 = b.x, b.y + NODE_HEIGHT // 2
        bend = (x2 - x1) // 2
        path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}"
        edges.append(
            Edge(edge.source, edge.target, edge.port, path, (x1 + x2) // 2, (y1 + y2) // 2 - 4)
        )
    width = 2 * MARGIN + len(layers) * NODE_WIDTH + max(len(layers) - 1, 0) * LAYER_GAP
    return Layout(tuple(nodes.values()), tuple(edges), width, height)


@lru_cache(maxsize=256)
def layout_for(version_id: UUID) -> Layout:
    """Versions never change (the database refuses UPDATE), so neither do their layouts."""
    from vectorbea.eventlog import store

    return layout(store.definition_for(version_id))


def with_status(graph: Layout, steps: dict) -> list[dict]:
    """The nodes with each step's status and attempt from a summary's `steps` (or a state)."""
    return [
        {"node": node, **steps.get(node.id, {"status": "pending", "attempt": 0})}
        for node in graph.nodes
    ]
