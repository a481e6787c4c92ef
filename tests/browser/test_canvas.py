"""The builder's canvas in Chromium: fit and auto-layout keep steps readable, edges go around
steps and their labels never overlap, and a large graph gets a minimap to move around with."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from vectorbea.workflows import commands

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def edge(source: str, target: str, port: str | None = None) -> dict:
    return {"source": source, "target": target, "port": port}


def triage_with_both_branches() -> dict:
    """Five steps; the approval's "approved" and "denied" branches go to different steps, and
    the branch's "normal" path passes the approval on its way to the last step."""
    steps = [
        {"id": "read", "kind": "transform", "name": "Read the ticket", "config": {"output": 1}},
        {
            "id": "route",
            "kind": "branch",
            "name": "Is it urgent?",
            "config": {
                "conditions": [{"port": "urgent", "when": "{{ input.urgent }}"}],
                "default_port": "normal",
            },
        },
        {
            "id": "approve",
            "kind": "approval",
            "name": "Escalate to on-call?",
            "config": {"title": "Page the on-call engineer?"},
        },
        {"id": "escalate", "kind": "transform", "name": "Escalate", "config": {"output": 2}},
        {"id": "file", "kind": "transform", "name": "File it", "config": {"output": 3}},
    ]
    edges = [
        edge("read", "route"),
        edge("route", "approve", "urgent"),
        edge("route", "file", "normal"),
        edge("approve", "escalate", "approved"),
        edge("approve", "file", "denied"),
    ]
    return {"input_schema": {"type": "object", "properties": {}}, "steps": steps, "edges": edges}


def chain(n: int) -> dict:
    """n transforms one after the other."""
    steps = [
        {"id": f"s{i}", "kind": "transform", "name": f"Step {i}", "config": {"output": i}}
        for i in range(n)
    ]
    edges = [edge(f"s{i - 1}", f"s{i}") for i in range(1, n)]
    return {"input_schema": {"type": "object", "properties": {}}, "steps": steps, "edges": edges}


def open_builder(page: Page, workflow, width: int = 1366, height: int = 768) -> None:
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/")
    expect(page.locator("#builder")).to_have_attribute("data-ready", "1")


def zoom_percent(page: Page) -> int:
    return int(page.locator("#zoom-level").inner_text().rstrip("%"))


# Measured in the page, in the canvas's own coordinates: each step's box, the points along
# each drawn edge that fall inside a step's box, and each edge label's box.
GEOMETRY = """() => {
  const frame = (g) => g.transform.baseVal.consolidate().matrix;
  const steps = [...document.querySelectorAll('#nodes g.node')].map((g) => {
    const box = g.querySelector('.node-box');
    const m = frame(g);
    return {id: g.dataset.node, x1: m.e, y1: m.f,
            x2: m.e + box.width.baseVal.value, y2: m.f + box.height.baseVal.value};
  });
  const crossings = [];
  document.querySelectorAll('#edges .edge-line').forEach((path) => {
    const length = path.getTotalLength();
    for (let at = 0; at <= length; at += 2) {
      const p = path.getPointAtLength(at);
      for (const s of steps) {
        if (p.x > s.x1 + 1 && p.x < s.x2 - 1 && p.y > s.y1 + 1 && p.y < s.y2 - 1) {
          crossings.push(`edge ${path.parentNode.dataset.edge} crosses ${s.id}`);
        }
      }
    }
  });
  const labels = [...document.querySelectorAll('#edges .edge-label')].map((g) => {
    const b = g.getBBox();
    const m = frame(g);
    return {text: g.textContent, x1: m.e + b.x, y1: m.f + b.y,
            x2: m.e + b.x + b.width, y2: m.f + b.y + b.height};
  });
  return {steps, crossings: [...new Set(crossings)], labels};
}"""


def overlapping(boxes: list[dict], others: list[dict]) -> list[tuple[str, str]]:
    found = []
    for a in boxes:
        for b in others:
            if a is b:
                continue
            if a["x1"] < b["x2"] and a["x2"] > b["x1"] and a["y1"] < b["y2"] and a["y2"] > b["y1"]:
                found.append((a.get("text") or a.get("id"), b.get("text") or b.get("id")))
    return found


def assert_clear_drawing(page: Page, labels: set[str]) -> None:
    geometry = page.evaluate(GEOMETRY)
    assert geometry["crossings"] == []
    assert {label["text"] for label in geometry["labels"]} == labels
    assert overlapping(geometry["labels"], geometry["labels"]) == []
    assert overlapping(geometry["labels"], geometry["steps"]) == []


def test_fit_and_auto_layout_keep_a_5_step_graph_readable_with_edges_around_steps(
    page: Page, alice, acme
):
    workflow = commands.create_workflow(acme, alice, "Triage", triage_with_both_branches())
    open_builder(page, workflow)
    expect(page.locator("g.edge")).to_have_count(5)
    labels = {"urgent", "normal", "approved", "denied"}

    page.get_by_role("button", name="Auto-layout").click()
    assert zoom_percent(page) >= 80
    assert_clear_drawing(page, labels)
    page.screenshot(path=screenshot_path("canvas-5-steps-auto-layout-1366"))
    # Edges leave a step in the order of its ports: "urgent" (above) to the step above.
    approve = page.locator('[data-node="approve"] .node-box').bounding_box()
    filed = page.locator('[data-node="file"] .node-box').bounding_box()
    assert approve["y"] + approve["height"] <= filed["y"]

    page.get_by_role("button", name="Zoom out").click()
    page.get_by_role("button", name="Zoom out").click()
    assert zoom_percent(page) < 80
    page.screenshot(path=screenshot_path("canvas-5-steps-zoomed-out-1366"))
    page.get_by_role("button", name="Fit to view").click()
    assert zoom_percent(page) >= 80
    # The steps that do not fit stay a scroll away.
    page.mouse.move(*center_of(page, "#canvas"))
    before = page.locator('[data-node="file"] .node-box').bounding_box()
    page.mouse.wheel(0, 120)
    after = page.locator('[data-node="file"] .node-box').bounding_box()
    assert after["y"] == pytest.approx(before["y"] - 120, abs=1)
    assert zoom_percent(page) >= 80
    # So do the arrow keys.
    page.locator("#canvas").focus()
    page.keyboard.press("ArrowRight")
    moved = page.locator('[data-node="file"] .node-box').bounding_box()
    assert moved["x"] == pytest.approx(after["x"] - 60, abs=1)

    # Opened again, the layout dagre made is drawn with its routes.
    page.reload()
    expect(page.locator("#builder")).to_have_attribute("data-ready", "1")
    assert zoom_percent(page) >= 80
    assert_clear_drawing(page, labels)
    assert page.locator("#minimap").is_hidden()


def test_edges_go_around_steps_placed_by_hand(page: Page, alice, acme):
    """A step dropped right on the line between two others: the edge detours around it."""
    definition = chain(3)
    definition["edges"] = [edge("s0", "s2"), edge("s0", "s1")]
    definition["layout"] = {
        "s0": {"x": 0, "y": 0},
        "s1": {"x": 300, "y": 0},
        "s2": {"x": 620, "y": 0},
    }
    workflow = commands.create_workflow(acme, alice, "By hand", definition)
    open_builder(page, workflow)
    expect(page.locator("g.edge")).to_have_count(2)
    assert_clear_drawing(page, set())
    page.screenshot(path=screenshot_path("canvas-detour-1366"))

    # Dragged off the line, the step no longer needs a detour; dragged back, it does again.
    title = page.locator('[data-node="s1"] .node-title')
    for dy in (160, -160):
        x, y = center_of_box(title.bounding_box())
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x, y + dy, steps=8)
        page.mouse.up()
        assert_clear_drawing(page, set())


def test_a_12_step_graph_has_a_minimap_that_moves_the_view(page: Page, alice, acme):
    workflow = commands.create_workflow(acme, alice, "Long", chain(12))
    open_builder(page, workflow)
    minimap = page.locator("#minimap")
    expect(minimap).to_be_visible()
    assert zoom_percent(page) >= 80
    expect(page.locator("#minimap .minimap-node")).to_have_count(12)
    canvas = page.locator("#canvas").bounding_box()
    last = page.locator('[data-node="s11"] .node-box')
    assert last.bounding_box()["x"] > canvas["x"] + canvas["width"]  # off to the right

    box = page.locator("#minimap-svg").bounding_box()
    page.mouse.click(box["x"] + box["width"] - 12, box["y"] + box["height"] / 2)
    step = last.bounding_box()
    assert canvas["x"] <= step["x"] and step["x"] + step["width"] <= canvas["x"] + canvas["width"]
    frame = page.locator("#minimap-view").bounding_box()
    assert frame["x"] + frame["width"] / 2 == pytest.approx(box["x"] + box["width"] - 12, abs=3)
    page.screenshot(path=screenshot_path("canvas-12-steps-minimap-1366"))


def test_the_canvas_at_phone_width(page: Page, alice, acme):
    workflow = commands.create_workflow(acme, alice, "Triage", triage_with_both_branches())
    open_builder(page, workflow, 390, 844)
    expect(page.locator("g.edge")).to_have_count(5)
    assert zoom_percent(page) >= 80
    # The graph opens on its first step, readable, inside the canvas.
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] >= 300
    first = page.locator('[data-node="read"] .node-box').bounding_box()
    assert (
        canvas["x"] <= first["x"] and first["x"] + first["width"] <= canvas["x"] + canvas["width"]
    )
    assert (
        canvas["y"] <= first["y"] and first["y"] + first["height"] <= canvas["y"] + canvas["height"]
    )
    page.screenshot(path=screenshot_path("canvas-5-steps-390"), full_page=True)


def center_of(page: Page, selector: str) -> tuple[float, float]:
    return center_of_box(page.locator(selector).bounding_box())


def center_of_box(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
