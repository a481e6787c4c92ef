// The workflow builder: an SVG canvas over the draft definition held in memory.
//
// One writer: every change goes through change(), which keeps undo history, redraws, keeps a
// copy in localStorage and schedules an autosave of the whole draft (with the revision it is
// based on). The server validates each save with the engine and answers with the problems and
// each step's output ports; a save based on a stale revision is refused with 409.
// The config panel is rendered by the server (htmx) from the definition held here; edits in
// it are read back by each control's data-path/data-type. No inline scripts or styles (CSP).
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var NODE_W = 224;
  var NODE_H = 64;
  var PORT_GAP = 24;
  var PORT_TOP = 50;
  var SAVE_DELAY_MS = 500;
  var HISTORY_LIMIT = 200;
  var MIN_ZOOM = 0.15;
  var MAX_ZOOM = 2.5;
  var READABLE_ZOOM = 0.8; // fit and auto-layout go no smaller: steps stay legible
  var MINIMAP_FROM = 9; // steps: from this many on, the canvas shows a minimap
  var ROUTE_MARGIN = 8; // how far an edge keeps from a step it passes
  var LABEL_PAD_X = 6;
  var LABEL_H = 18;
  var LABEL_CHAR_W = 7.5; // room per character of an edge label (11px, semibold)
  var t0 = performance.now();

  var dataEl = document.getElementById("builder-data");
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var builder = document.getElementById("builder");
  var svg = document.getElementById("canvas");
  var viewport = document.getElementById("viewport");
  var edgesLayer = document.getElementById("edges");
  var nodesLayer = document.getElementById("nodes");
  var ghostEdge = document.getElementById("ghost-edge");
  var marquee = document.getElementById("marquee");
  var wrap = document.getElementById("canvas-wrap");
  var panelEl = document.getElementById("panel");
  var saveStateEl = document.getElementById("save-state");
  var minimap = document.getElementById("minimap");
  var minimapSvg = document.getElementById("minimap-svg");
  var minimapNodes = document.getElementById("minimap-nodes");
  var minimapView = document.getElementById("minimap-view");
  var readOnly = !!data.readOnly;
  var kinds = {};
  data.kinds.forEach(function (k) { kinds[k.name] = k; });
  var storageKey = "vectorbea:draft:" + data.workflowId;
  var csrfToken = (function () {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  })();

  // --- state ----------------------------------------------------------------------------------

  var def = normalise(data.definition);
  var revision = data.revision;
  var ports = data.ports || {};
  var issues = data.issues || [];
  // Problems only this browser knows of (a panel field holding text that is not valid JSON
  // is not in the draft): keyed by "<step id>|<field path>", listed with the server's.
  var localIssues = {};
  function allIssues() {
    return issues.concat(Object.keys(localIssues).map(function (key) { return localIssues[key]; }));
  }
  var selection = { nodes: new Set(), edge: null };
  var view = { x: 40, y: 40, k: 1 };
  var undoStack = [];
  var redoStack = [];
  var lastCoalesce = null;
  var saveTimer = null;
  var saving = false;
  var saveAgain = false;
  var conflict = null;
  var panelStep = undefined; // step id the panel shows; "" for the run input, undefined: none
  var lastTemplateField = null;
  var stats = { renders: 0, lastRenderMs: 0 };
  var routed = null; // dagre's last answer: { key, nodes, edges }
  var measureCtx = null;
  var labelWidths = {};

  function normalise(d) {
    d = d && typeof d === "object" && !Array.isArray(d) ? clone(d) : {};
    if (!Array.isArray(d.steps)) d.steps = [];
    if (!Array.isArray(d.edges)) d.edges = [];
    if (!d.input_schema) d.input_schema = { type: "object", properties: {} };
    if (!d.layout || typeof d.layout !== "object" || Array.isArray(d.layout)) d.layout = {};
    return d;
  }

  function clone(value) { return JSON.parse(JSON.stringify(value)); }
  function serial() { return JSON.stringify(def); }

  var missing = def.steps.some(function (s) { return !validStep(s) || !def.layout[s.id]; });
  if (missing && def.steps.length) layoutPositions();
  var savedJson = serial();

  function validStep(s) { return s && typeof s === "object" && typeof s.id === "string"; }
  function steps() { return def.steps.filter(validStep); }
  function stepById(id) {
    for (var i = 0; i < def.steps.length; i++) if (def.steps[i] && def.steps[i].id === id) return def.steps[i];
    return null;
  }
  function pos(id) {
    var p = def.layout[id];
    return p && typeof p.x === "number" ? p : { x: 0, y: 0 };
  }
  function portsOf(step) {
    if (Object.prototype.hasOwnProperty.call(ports, step.id)) return ports[step.id];
    var kind = kinds[step.kind];
    return kind ? kind.ports : null;
  }
  function nodeHeight(step) {
    var p = portsOf(step);
    return p && p.length ? Math.max(NODE_H, PORT_TOP + p.length * PORT_GAP - 8) : NODE_H;
  }
  function outPortY(step, port) {
    var p = portsOf(step);
    if (!p || !p.length) return NODE_H / 2;
    var i = p.indexOf(port);
    if (i < 0 && port == null && step.kind === "approval") i = 0;
    return i < 0 ? nodeHeight(step) - 10 : PORT_TOP + i * PORT_GAP;
  }

  // --- changes, history ------------------------------------------------------------------------

  function change(mutate, options) {
    if (readOnly) return;
    options = options || {};
    var before = serial();
    mutate();
    if (serial() === before) return;
    if (!options.coalesce || options.coalesce !== lastCoalesce) {
      undoStack.push(before);
      if (undoStack.length > HISTORY_LIMIT) undoStack.shift();
    }
    lastCoalesce = options.coalesce || null;
    redoStack = [];
    afterChange(options);
  }

  function afterChange(options) {
    render();
    keepLocalCopy();
    scheduleSave(options && options.saveDelay);
    updateSaveState();
    if (!(options && options.keepPanel)) refreshPanelIfNeeded();
  }

  function undo() {
    if (readOnly || !undoStack.length) return;
    redoStack.push(serial());
    def = normalise(JSON.parse(undoStack.pop()));
    lastCoalesce = null;
    pruneSelection();
    afterChange({});
    reloadPanel();
  }

  function redo() {
    if (readOnly || !redoStack.length) return;
    undoStack.push(serial());
    def = normalise(JSON.parse(redoStack.pop()));
    lastCoalesce = null;
    pruneSelection();
    afterChange({});
    reloadPanel();
  }

  function pruneSelection() {
    selection.nodes.forEach(function (id) { if (!stepById(id)) selection.nodes.delete(id); });
    if (selection.edge != null && !def.edges[selection.edge]) selection.edge = null;
  }

  // --- operations ----------------------------------------------------------------------------

  function newId(kind) {
    var base = kind.replace(/[^A-Za-z0-9_]/g, "_");
    for (var n = 1; ; n++) if (!stepById(base + "_" + n)) return base + "_" + n;
  }

  function newName(label) {
    var names = new Set(steps().map(function (s) { return s.name; }));
    if (!names.has(label)) return label;
    for (var n = 2; ; n++) if (!names.has(label + " " + n)) return label + " " + n;
  }

  function addStep(kindName, x, y) {
    var kind = kinds[kindName];
    if (!kind) return;
    var id = newId(kindName);
    change(function () {
      def.steps.push({ id: id, kind: kindName, name: newName(kind.label), config: clone(kind.config || {}) });
      def.layout[id] = { x: Math.round(x), y: Math.round(y) };
    });
    selectOnly(id);
  }

  function connect(source, target, port) {
    if (source === target) return toast("A step cannot connect to itself.");
    var exists = def.edges.some(function (e) {
      return e && e.source === source && e.target === target && (e.port || null) === (port || null);
    });
    if (exists) return toast("These steps are already connected that way.");
    change(function () { def.edges.push({ source: source, target: target, port: port || null }); });
  }

  function deleteSelection() {
    if (!selection.nodes.size && selection.edge == null) return;
    var gone = selection.nodes;
    var edgeIndex = selection.edge;
    change(function () {
      def.steps = def.steps.filter(function (s) { return !(validStep(s) && gone.has(s.id)); });
      def.edges = def.edges.filter(function (e, i) {
        return i !== edgeIndex && !(e && (gone.has(e.source) || gone.has(e.target)));
      });
      gone.forEach(function (id) { delete def.layout[id]; });
    });
    selection = { nodes: new Set(), edge: null };
    render();
    showPanelFor();
  }

  function duplicateSelection() {
    if (!selection.nodes.size) return;
    var mapping = {};
    change(function () {
      selection.nodes.forEach(function (id) {
        var step = stepById(id);
        if (!step) return;
        var copy = clone(step);
        copy.id = newId(step.kind);
        copy.name = newName((step.name || step.id) + " copy");
        mapping[id] = copy.id;
        def.steps.push(copy);
        var p = pos(id);
        def.layout[copy.id] = { x: p.x + 40, y: p.y + 40 };
      });
      def.edges.slice().forEach(function (e) {
        if (e && mapping[e.source] && mapping[e.target]) {
          def.edges.push({ source: mapping[e.source], target: mapping[e.target], port: e.port || null });
        }
      });
    });
    selection = { nodes: new Set(Object.values(mapping)), edge: null };
    render();
    showPanelFor();
  }

  // Dagre lays the graph out left to right. Every edge gets a label node (empty for edges
  // without a port name) so that dagre leaves room for the labels and routes each edge
  // through the gaps between columns; its points and label positions are kept in `routed`
  // and drawn as long as the steps stay where dagre put them.
  function runDagre() {
    var g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 32, edgesep: 16, ranksep: 100, marginx: 20, marginy: 20 });
    steps().forEach(function (s) { g.setNode(s.id, { width: NODE_W, height: nodeHeight(s) }); });
    def.edges.forEach(function (e, i) {
      if (!e || !g.hasNode(e.source) || !g.hasNode(e.target) || e.source === e.target) return;
      var size = labelSize(edgeLabel(e));
      g.setEdge(e.source, e.target, { width: size.w, height: size.h, labelpos: "c" }, String(i));
    });
    dagre.layout(g, { constraints: portOrder(g) });
    var nodes = {};
    g.nodes().forEach(function (id) {
      var n = g.node(id);
      nodes[id] = { x: Math.round(n.x - n.width / 2), y: Math.round(n.y - n.height / 2) };
    });
    var edges = {};
    g.edges().forEach(function (ref) {
      var e = g.edge(ref);
      edges[ref.name] = { points: (e.points || []).map(function (p) { return { x: p.x, y: p.y }; }), label: { x: e.x, y: e.y } };
    });
    return { key: structureKey(), nodes: nodes, edges: edges };
  }

  // Steps reached from one step's ports, kept in the order of those ports (top to bottom) so
  // that its edges do not cross as they leave it. Dagre applies each pair within a column;
  // a pair that would contradict earlier ones (a cycle) is left out.
  function portOrder(g) {
    var constraints = [];
    var below = {};
    function reaches(from, to) {
      var seen = {};
      var stack = [from];
      while (stack.length) {
        var id = stack.pop();
        if (id === to) return true;
        if (seen[id]) continue;
        seen[id] = true;
        (below[id] || []).forEach(function (next) { stack.push(next); });
      }
      return false;
    }
    steps().forEach(function (s) {
      var names = portsOf(s);
      if (!names || names.length < 2) return;
      var targets = [];
      names.forEach(function (port) {
        def.edges.forEach(function (e) {
          if (e && e.source === s.id && e.port === port && e.target !== s.id && g.hasNode(e.target) && targets.indexOf(e.target) < 0) targets.push(e.target);
        });
      });
      for (var i = 1; i < targets.length; i++) {
        if (reaches(targets[i], targets[i - 1])) continue;
        (below[targets[i - 1]] = below[targets[i - 1]] || []).push(targets[i]);
        constraints.push({ left: targets[i - 1], right: targets[i] });
      }
    });
    return constraints;
  }

  // What dagre's answer depends on: the steps, their heights and the edges with their labels.
  function structureKey() {
    return JSON.stringify([
      steps().map(function (s) { return [s.id, nodeHeight(s)]; }),
      def.edges.map(function (e) { return e ? [e.source, e.target, edgeLabel(e)] : null; }),
    ]);
  }

  function layoutPositions() {
    if (typeof dagre === "undefined") return simpleLayout();
    routed = runDagre();
    steps().forEach(function (s) { def.layout[s.id] = { x: routed.nodes[s.id].x, y: routed.nodes[s.id].y }; });
  }

  function simpleLayout() {
    steps().forEach(function (s, i) { def.layout[s.id] = { x: (i % 6) * 280, y: Math.floor(i / 6) * 120 }; });
  }

  function autoLayout() {
    change(layoutPositions);
    fit();
  }

  // --- rendering -----------------------------------------------------------------------------

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function clip(text, max) { return text.length > max ? text.slice(0, max - 1) + "…" : text; }

  function issuesByStep() {
    var byStep = {};
    var indexToId = {};
    def.steps.forEach(function (s, i) { if (validStep(s)) indexToId[i] = s.id; });
    allIssues().forEach(function (issue) {
      var id = issue.step_id;
      if (!id) {
        var m = /^steps\[(\d+)\]/.exec(issue.path || "");
        if (m) id = indexToId[m[1]];
      }
      if (id && issue.edge_index == null) (byStep[id] = byStep[id] || []).push(issue);
    });
    return byStep;
  }

  function issuesByEdge() {
    var byEdge = {};
    issues.forEach(function (issue) {
      if (issue.edge_index != null) (byEdge[issue.edge_index] = byEdge[issue.edge_index] || []).push(issue);
    });
    return byEdge;
  }

  function render() {
    var start = performance.now();
    var stepIssues = issuesByStep();
    nodesLayer.textContent = "";
    steps().forEach(function (step) { renderNode(step, stepIssues[step.id] || []); });
    renderEdges();
    renderMinimap();
    applyView();
    document.getElementById("canvas-empty").hidden = def.steps.length > 0;
    renderProblems();
    updateHud();
    updateToolbar();
    stats.renders++;
    stats.lastRenderMs = performance.now() - start;
  }

  function renderNode(step, stepIssues) {
    var p = pos(step.id);
    var h = nodeHeight(step);
    var kind = kinds[step.kind];
    var classes = "node kind-" + String(step.kind).replace(/[^A-Za-z0-9_-]/g, "");
    if (selection.nodes.has(step.id)) classes += " is-selected";
    if (stepIssues.length) classes += " has-issues";
    var g = el("g", { "class": classes, transform: "translate(" + p.x + "," + p.y + ")", "data-node": step.id }, nodesLayer);
    var title = el("title", {}, g);
    title.textContent = (step.name || step.id) + " (" + (kind ? kind.label : step.kind) + ")" +
      (stepIssues.length ? "\n" + stepIssues.map(function (i) { return "• " + i.message; }).join("\n") : "");
    el("rect", { "class": "node-box", width: NODE_W, height: h, rx: 10 }, g);
    el("rect", { "class": "node-accent", width: 4, height: h - 16, x: 0, y: 8, rx: 2 }, g);
    el("rect", { "class": "node-icon", x: 14, y: 14, width: 26, height: 26, rx: 7 }, g);
    var icon = el("text", { "class": "node-icon-text", x: 27, y: 31.5, "text-anchor": "middle" }, g);
    icon.textContent = (kind ? kind.label : "?").slice(0, 1);
    var name = el("text", { "class": "node-title", x: 50, y: 26 }, g);
    name.textContent = clip(String(step.name || step.id), 22);
    var sub = el("text", { "class": "node-sub", x: 50, y: 43 }, g);
    sub.textContent = clip((kind ? kind.label : "Unknown kind “" + step.kind + "”") + " · " + step.id, 28);
    el("circle", { "class": "port port-in", cx: 0, cy: NODE_H / 2, r: 6, "data-port-in": step.id }, g);
    var outs = portsOf(step);
    if (outs && outs.length) {
      outs.forEach(function (port, i) {
        var y = PORT_TOP + i * PORT_GAP;
        var label = el("text", { "class": "port-label", x: NODE_W - 14, y: y + 4, "text-anchor": "end" }, g);
        label.textContent = clip(String(port), 18);
        el("circle", { "class": "port port-out", cx: NODE_W, cy: y, r: 6, "data-port-out": step.id, "data-port": port }, g);
      });
    } else {
      el("circle", { "class": "port port-out", cx: NODE_W, cy: NODE_H / 2, r: 6, "data-port-out": step.id, "data-port": "" }, g);
    }
    if (stepIssues.length) {
      var badge = el("g", { "class": "node-badge", transform: "translate(" + (NODE_W - 14) + ",-6)" }, g);
      el("circle", { r: 10 }, badge);
      var count = el("text", { "text-anchor": "middle", y: 4 }, badge);
      count.textContent = stepIssues.length > 9 ? "9+" : String(stepIssues.length);
    }
  }

  // --- edges: routes and labels ---------------------------------------------------------------

  function edgeLabel(e) { return e && e.port != null && e.port !== "" ? clip(String(e.port), 24) : ""; }

  // The room a label takes in the layout: from its length alone, so that the same graph gets
  // the same layout in every browser (and a saved layout is recognised as dagre's).
  function labelSize(text) {
    if (!text) return { w: 0, h: 0 };
    return { w: Math.ceil(text.length * LABEL_CHAR_W) + LABEL_PAD_X * 2, h: LABEL_H };
  }

  // The label as drawn: as wide as its text needs, and never narrower than its room.
  function drawnLabelSize(text) {
    if (!(text in labelWidths)) {
      if (!measureCtx) {
        measureCtx = document.createElement("canvas").getContext("2d");
        measureCtx.font = "600 11px " + getComputedStyle(document.body).fontFamily;
      }
      labelWidths[text] = Math.max(labelSize(text).w, Math.ceil(measureCtx.measureText(text).width) + LABEL_PAD_X * 2);
    }
    return { w: labelWidths[text], h: LABEL_H };
  }

  function box(id) {
    var s = stepById(id);
    var p = pos(id);
    return { x1: p.x, y1: p.y, x2: p.x + NODE_W, y2: p.y + nodeHeight(s) };
  }

  function overlaps(a, b) { return a.x1 < b.x2 && a.x2 > b.x1 && a.y1 < b.y2 && a.y2 > b.y1; }

  // Does the segment p→q pass through the rectangle r? (Liang–Barsky clipping.)
  function segmentHits(p, q, r) {
    var t0 = 0, t1 = 1, dx = q.x - p.x, dy = q.y - p.y;
    var checks = [[-dx, p.x - r.x1], [dx, r.x2 - p.x], [-dy, p.y - r.y1], [dy, r.y2 - p.y]];
    for (var i = 0; i < 4; i++) {
      var a = checks[i][0], b = checks[i][1];
      if (a === 0) { if (b < 0) return false; continue; }
      var t = b / a;
      if (a < 0) { if (t > t1) return false; if (t > t0) t0 = t; }
      else { if (t < t0) return false; if (t < t1) t1 = t; }
    }
    return t0 < t1;
  }

  // The steps' boxes, each with the margin an edge keeps from it.
  function paddedBoxes(boxes) {
    return Object.keys(boxes).map(function (id) {
      var b = boxes[id];
      return { id: id, x1: b.x1 - ROUTE_MARGIN, y1: b.y1 - ROUTE_MARGIN, x2: b.x2 + ROUTE_MARGIN, y2: b.y2 + ROUTE_MARGIN };
    });
  }

  // A route is a list of segments, each { from, to, c1?, c2? } (a line, or a cubic curve).
  function sampled(route) {
    var points = [route[0].from];
    route.forEach(function (seg) {
      if (!seg.c1) { points.push(seg.to); return; }
      for (var i = 1; i <= 12; i++) {
        var t = i / 12, u = 1 - t;
        points.push({
          x: u * u * u * seg.from.x + 3 * u * u * t * seg.c1.x + 3 * u * t * t * seg.c2.x + t * t * t * seg.to.x,
          y: u * u * u * seg.from.y + 3 * u * u * t * seg.c1.y + 3 * u * t * t * seg.c2.y + t * t * t * seg.to.y,
        });
      }
    });
    return points;
  }

  // How many steps the route passes through, other than the edge's own two.
  function hits(route, padded, e) {
    var points = sampled(route);
    var span = { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
    points.forEach(function (p) {
      span.x1 = Math.min(span.x1, p.x); span.x2 = Math.max(span.x2, p.x);
      span.y1 = Math.min(span.y1, p.y); span.y2 = Math.max(span.y2, p.y);
    });
    span.x1 -= 1; span.y1 -= 1; span.x2 += 1; span.y2 += 1;
    var count = 0;
    padded.forEach(function (r) {
      if ((e && (r.id === e.source || r.id === e.target)) || !overlaps(span, r)) return;
      for (var i = 1; i < points.length; i++) {
        if (segmentHits(points[i - 1], points[i], r)) { count++; return; }
      }
    });
    return count;
  }

  // A smooth path through points that go left to right: level at each point, an S-curve
  // between two points at different heights (it stays between their x positions).
  function smoothRoute(points) {
    var route = [];
    for (var i = 1; i < points.length; i++) {
      var a = points[i - 1], b = points[i];
      if (Math.abs(a.y - b.y) < 0.5) { route.push({ from: a, to: b }); continue; }
      var dx = Math.max(8, (b.x - a.x) / 2);
      route.push({ from: a, to: b, c1: { x: a.x + dx, y: a.y }, c2: { x: b.x - dx, y: b.y } });
    }
    return route;
  }

  // Straight lines through points with rounded corners (for detours).
  function roundedRoute(points) {
    var route = [];
    var at = points[0];
    for (var i = 1; i < points.length; i++) {
      var b = points[i];
      var next = points[i + 1];
      if (!next) { route.push({ from: at, to: b }); break; }
      var inLen = Math.hypot(b.x - at.x, b.y - at.y);
      var outLen = Math.hypot(next.x - b.x, next.y - b.y);
      var r = Math.min(14, inLen / 2, outLen / 2);
      if (r < 1) { route.push({ from: at, to: b }); at = b; continue; }
      var p1 = { x: b.x - (b.x - at.x) / inLen * r, y: b.y - (b.y - at.y) / inLen * r };
      var p2 = { x: b.x + (next.x - b.x) / outLen * r, y: b.y + (next.y - b.y) / outLen * r };
      route.push({ from: at, to: p1 });
      route.push({ from: p1, to: p2, c1: b, c2: b });
      at = p2;
    }
    return route;
  }

  function routeD(route) {
    var d = "M" + r1(route[0].from.x) + "," + r1(route[0].from.y);
    route.forEach(function (seg) {
      d += seg.c1
        ? " C" + r1(seg.c1.x) + "," + r1(seg.c1.y) + " " + r1(seg.c2.x) + "," + r1(seg.c2.y) + " " + r1(seg.to.x) + "," + r1(seg.to.y)
        : " L" + r1(seg.to.x) + "," + r1(seg.to.y);
    });
    return d;
  }

  function r1(n) { return Math.round(n * 10) / 10; }

  // Where the steps stand relative to dagre's layout: the offset most of them share.
  function routedOffset() {
    var counts = {};
    var best = null;
    steps().forEach(function (s) {
      var n = routed.nodes[s.id];
      if (!n) return;
      var p = pos(s.id);
      var key = (p.x - n.x) + "," + (p.y - n.y);
      counts[key] = (counts[key] || 0) + 1;
      if (!best || counts[key] > counts[best]) best = key;
    });
    if (!best) return null;
    var parts = best.split(",");
    return { x: +parts[0], y: +parts[1] };
  }

  // The columns of steps (x ranges, merged where steps overlap): an edge crosses a column
  // level, at a height dagre left free.
  function columnsOf(boxes) {
    var spans = Object.keys(boxes).map(function (id) { return [boxes[id].x1, boxes[id].x2]; });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var columns = [];
    spans.forEach(function (span) {
      var last = columns[columns.length - 1];
      if (last && span[0] < last.x2) last.x2 = Math.max(last.x2, span[1]);
      else columns.push({ x1: span[0], x2: span[1] });
    });
    return columns;
  }

  function columnAt(x, columns) {
    for (var i = 0; i < columns.length; i++) if (x > columns[i].x1 && x < columns[i].x2) return columns[i];
    return null;
  }

  // Dagre's route for an edge, if both its steps are still where dagre put them.
  function dagreRoute(i, e, start, end, offset, columns) {
    var r = routed && routed.edges[String(i)];
    if (!r || !offset || r.points.length < 3) return null;
    var a = routed.nodes[e.source], b = routed.nodes[e.target];
    var pa = pos(e.source), pb = pos(e.target);
    if (!a || !b || pa.x - a.x !== offset.x || pa.y - a.y !== offset.y || pb.x - b.x !== offset.x || pb.y - b.y !== offset.y) return null;
    var points = [start];
    r.points.slice(1, -1).forEach(function (p) {
      var q = { x: p.x + offset.x, y: p.y + offset.y };
      var column = columnAt(q.x, columns);
      if (column) {
        points.push({ x: column.x1 - 2, y: q.y });
        points.push({ x: column.x2 + 2, y: q.y });
      } else {
        points.push(q);
      }
    });
    points.push(end);
    for (var k = 1; k < points.length; k++) if (points[k].x < points[k - 1].x) return null;
    return { route: smoothRoute(points), label: { x: r.label.x + offset.x, y: r.label.y + offset.y } };
  }

  // An edge whose steps were moved by hand: a plain curve if it passes no other step, or else
  // a detour along the free height (above, below or between steps) that crosses the fewest.
  function freeRoute(e, start, end, padded, boxes) {
    var forward = end.x - start.x >= 40;
    if (forward) {
      var plain = smoothRoute([start, end]);
      if (!hits(plain, padded, e)) return { route: plain };
    }
    var gap = forward ? Math.min(40, (end.x - start.x) / 3) : 24;
    var xa = start.x + gap;
    var xb = end.x - gap;
    var lo = Math.min(xa, xb), hi = Math.max(xa, xb);
    var lanes = [start.y, end.y];
    var own = forward ? [] : [boxes[e.source], boxes[e.target]];
    padded.concat(own).forEach(function (r) {
      if (r.x2 < lo || r.x1 > hi || r.id === e.source || r.id === e.target) return;
      lanes.push(r.y1 - ROUTE_MARGIN - 2, r.y2 + ROUTE_MARGIN + 2);
    });
    if (!forward) {
      var top = Infinity, bottom = -Infinity;
      own.forEach(function (r) { top = Math.min(top, r.y1); bottom = Math.max(bottom, r.y2); });
      lanes.push(top - 2 * ROUTE_MARGIN, bottom + 2 * ROUTE_MARGIN);
    }
    var ownPadded = own.map(function (r) { return { x1: r.x1 + 1, y1: r.y1 + 1, x2: r.x2 - 1, y2: r.y2 - 1 }; });
    var best = null;
    lanes.forEach(function (lane) {
      var route = roundedRoute([start, { x: xa, y: start.y }, { x: xa, y: lane }, { x: xb, y: lane }, { x: xb, y: end.y }, end]);
      var crossed = hits(route, padded, e) + (forward ? 0 : hits(route.slice(1, -1), ownPadded, null));
      var length = Math.abs(lane - start.y) + Math.abs(lane - end.y);
      if (!best || crossed < best.crossed || (crossed === best.crossed && length < best.length)) {
        best = { route: route, crossed: crossed, length: length };
      }
    });
    return { route: best.route };
  }

  function edgeEnds(e) {
    var s = stepById(e.source);
    var t = stepById(e.target);
    if (!s || !t) return null;
    var a = pos(e.source);
    var b = pos(e.target);
    return { start: { x: a.x + NODE_W + 6, y: a.y + outPortY(s, e.port) }, end: { x: b.x - 8, y: b.y + NODE_H / 2 } };
  }

  // Every edge's route and label box; labels that would cover another label or a step are
  // moved along their edge to the nearest free spot.
  function layoutEdges() {
    if (routed && routed.key !== structureKey()) routed = null;
    if (!routed && typeof dagre !== "undefined" && steps().length <= 400) routed = runDagre();
    var offset = routed ? routedOffset() : null;
    var boxes = {};
    steps().forEach(function (s) { boxes[s.id] = box(s.id); });
    var nodeBoxes = Object.keys(boxes).map(function (id) { return boxes[id]; });
    var padded = paddedBoxes(boxes);
    var columns = columnsOf(boxes);
    var placed = [];
    var out = [];
    def.edges.forEach(function (e, i) {
      if (!e) return;
      var ends = edgeEnds(e);
      if (!ends) return;
      var r = dagreRoute(i, e, ends.start, ends.end, offset, columns);
      if (r && hits(r.route, padded, e)) r = null;
      if (!r) r = freeRoute(e, ends.start, ends.end, padded, boxes);
      var item = { index: i, edge: e, d: routeD(r.route), route: r.route, label: null };
      var text = edgeLabel(e);
      if (text) item.label = placeLabel(text, r, nodeBoxes, placed);
      out.push(item);
    });
    return out;
  }

  function placeLabel(text, r, nodeBoxes, placed) {
    var size = drawnLabelSize(text);
    var points = sampled(r.route);
    var candidates = r.label ? [r.label] : [];
    [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.12, 0.88].forEach(function (f) {
      candidates.push(points[Math.min(points.length - 1, Math.round(f * (points.length - 1)))]);
    });
    var chosen = null;
    for (var i = 0; i < candidates.length && !chosen; i++) {
      var c = candidates[i];
      var b = { x1: c.x - size.w / 2, y1: c.y - size.h / 2, x2: c.x + size.w / 2, y2: c.y + size.h / 2, text: text };
      var clear = !placed.some(function (o) { return overlaps(b, o); }) && !nodeBoxes.some(function (o) { return overlaps(b, o); });
      if (clear) chosen = b;
    }
    if (!chosen) chosen = nudgeClear(candidates[0], size, nodeBoxes, placed, text);
    placed.push(chosen);
    return chosen;
  }

  // No spot on the edge is free: the nearest free spot straight above or below it.
  function nudgeClear(c, size, nodeBoxes, placed, text) {
    for (var step = 1; step < 40; step++) {
      for (var sign = -1; sign <= 1; sign += 2) {
        var y = c.y + sign * step * (size.h / 2 + 1);
        var b = { x1: c.x - size.w / 2, y1: y - size.h / 2, x2: c.x + size.w / 2, y2: y + size.h / 2, text: text };
        if (!placed.some(function (o) { return overlaps(b, o); }) && !nodeBoxes.some(function (o) { return overlaps(b, o); })) return b;
      }
    }
    return { x1: c.x - size.w / 2, y1: c.y - size.h / 2, x2: c.x + size.w / 2, y2: c.y + size.h / 2, text: text };
  }

  function curve(x1, y1, x2, y2) {
    var dx = Math.max(40, Math.abs(x2 - x1) / 2);
    return "M" + x1 + "," + y1 + " C" + (x1 + dx) + "," + y1 + " " + (x2 - dx) + "," + y2 + " " + x2 + "," + y2;
  }

  function renderEdges() {
    var byEdge = issuesByEdge();
    edgesLayer.textContent = "";
    layoutEdges().forEach(function (item) {
      var i = item.index;
      var bad = !!byEdge[i];
      var selected = selection.edge === i;
      var g = el("g", { "class": "edge" + (bad ? " has-issues" : "") + (selected ? " is-selected" : ""), "data-edge": i }, edgesLayer);
      if (bad) {
        var title = el("title", {}, g);
        title.textContent = byEdge[i].map(function (x) { return x.message; }).join("\n");
      }
      el("path", { "class": "edge-hit", d: item.d, "data-edge": i }, g);
      el("path", {
        "class": "edge-line", d: item.d,
        "marker-end": "url(#" + (selected ? "arrow-selected" : bad ? "arrow-bad" : "arrow") + ")",
      }, g);
      if (item.label) drawLabel(g, item.label);
    });
  }

  function drawLabel(g, b) {
    var label = el("g", { "class": "edge-label", transform: "translate(" + r1(b.x1) + "," + r1(b.y1) + ")" }, g);
    el("rect", { width: b.x2 - b.x1, height: b.y2 - b.y1, rx: 9 }, label);
    var text = el("text", { x: (b.x2 - b.x1) / 2, y: (b.y2 - b.y1) / 2 + 4, "text-anchor": "middle" }, label);
    text.textContent = b.text;
  }

  // While steps are dragged: new routes for the edges, into the elements already drawn.
  function refreshEdgePaths() {
    var groups = {};
    edgesLayer.querySelectorAll("g.edge").forEach(function (g) { groups[g.getAttribute("data-edge")] = g; });
    layoutEdges().forEach(function (item) {
      var g = groups[String(item.index)];
      if (!g) return;
      g.querySelectorAll("path").forEach(function (p) { p.setAttribute("d", item.d); });
      var label = g.querySelector(".edge-label");
      if (label && item.label) label.setAttribute("transform", "translate(" + r1(item.label.x1) + "," + r1(item.label.y1) + ")");
    });
  }

  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
    var grid = 20 * view.k;
    wrap.style.backgroundSize = grid + "px " + grid + "px";
    wrap.style.backgroundPosition = view.x + "px " + view.y + "px";
    var zoom = document.getElementById("zoom-level");
    if (zoom) zoom.textContent = Math.round(view.k * 100) + "%";
    updateMinimapView();
  }

  // --- minimap: the whole graph in small, with the visible part framed -------------------------

  // Sizes are not read from the page while drawing (that would force a layout of the whole
  // page on every render): the minimap's is set here, the canvas's is kept up to date by a
  // ResizeObserver.
  var MINIMAP_W = 200;
  var MINIMAP_H = 128; // at most: a flat graph gets a flatter minimap
  var mini = null; // world → minimap: { k, x, y }
  var canvasSize = { w: 0, h: 0 };

  function measureCanvas() {
    var r = svg.getBoundingClientRect();
    canvasSize = { w: r.width, h: r.height };
    updateMinimapView();
  }

  function renderMinimap() {
    var box = steps().length >= MINIMAP_FROM ? bounds() : null;
    minimap.hidden = !box;
    minimapNodes.textContent = "";
    if (!box) { mini = null; return; }
    var pad = 60;
    var bw = box.x2 - box.x1 + pad * 2;
    var bh = box.y2 - box.y1 + pad * 2;
    var w = MINIMAP_W;
    var h = Math.round(Math.max(48, Math.min(MINIMAP_H, w * bh / bw)));
    minimapSvg.style.height = h + "px";
    var k = Math.min(w / bw, h / bh);
    mini = { k: k, x: (w - bw * k) / 2 - (box.x1 - pad) * k, y: (h - bh * k) / 2 - (box.y1 - pad) * k };
    steps().forEach(function (s) {
      var p = pos(s.id);
      el("rect", {
        "class": "minimap-node kind-" + String(s.kind).replace(/[^A-Za-z0-9_-]/g, "") + (selection.nodes.has(s.id) ? " is-selected" : ""),
        x: r1(mini.x + p.x * k), y: r1(mini.y + p.y * k),
        width: Math.max(2, r1(NODE_W * k)), height: Math.max(2, r1(nodeHeight(s) * k)), rx: 1.5,
      }, minimapNodes);
    });
  }

  function updateMinimapView() {
    if (!mini) return;
    minimapView.setAttribute("x", r1(mini.x + (-view.x / view.k) * mini.k));
    minimapView.setAttribute("y", r1(mini.y + (-view.y / view.k) * mini.k));
    minimapView.setAttribute("width", Math.max(0, r1(canvasSize.w / view.k * mini.k)));
    minimapView.setAttribute("height", Math.max(0, r1(canvasSize.h / view.k * mini.k)));
  }

  // A point of the minimap becomes the middle of the canvas.
  function minimapMoveTo(event) {
    if (!mini) return;
    var m = minimapSvg.getBoundingClientRect();
    var r = svg.getBoundingClientRect();
    var wx = (event.clientX - m.left - mini.x) / mini.k;
    var wy = (event.clientY - m.top - mini.y) / mini.k;
    view.x = r.width / 2 - wx * view.k;
    view.y = r.height / 2 - wy * view.k;
    applyView();
  }

  var minimapDragging = false;
  minimap.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault();
    minimap.setPointerCapture(event.pointerId);
    minimapDragging = true;
    minimapMoveTo(event);
  });
  minimap.addEventListener("pointermove", function (event) { if (minimapDragging) minimapMoveTo(event); });
  minimap.addEventListener("pointerup", function () { minimapDragging = false; });
  minimap.addEventListener("pointercancel", function () { minimapDragging = false; });
  if (window.ResizeObserver) new ResizeObserver(measureCanvas).observe(svg);
  else window.addEventListener("resize", measureCanvas);

  function updateHud() {
    var hud = document.getElementById("canvas-hud");
    var n = steps().length;
    var m = def.edges.length;
    hud.textContent = n + " step" + (n === 1 ? "" : "s") + " · " + m + " connection" + (m === 1 ? "" : "s") +
      (selection.nodes.size > 1 ? " · " + selection.nodes.size + " selected" : "");
  }

  function updateToolbar() {
    var u = builder.querySelector('[data-action="undo"]');
    var r = builder.querySelector('[data-action="redo"]');
    if (u) u.disabled = !undoStack.length;
    if (r) r.disabled = !redoStack.length;
  }

  function renderProblems() {
    var list = document.getElementById("problem-list");
    var shown = allIssues();
    list.textContent = "";
    document.getElementById("problem-count").textContent = String(shown.length);
    document.getElementById("problems-ok").hidden = shown.length > 0;
    document.getElementById("problems").classList.toggle("has-problems", shown.length > 0);
    var publish = document.getElementById("publish");
    if (publish) publish.title = shown.length ? "Fix the problems first" : "Publish the draft as a new version";
    shown.slice(0, 200).forEach(function (issue) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "problem" + (issue.local ? " is-local" : "");
      var where = document.createElement("span");
      where.className = "problem-where";
      where.textContent = issue.where || "Workflow";
      var text = document.createElement("span");
      text.className = "problem-text";
      text.textContent = issue.advice ? issue.advice.charAt(0).toUpperCase() + issue.advice.slice(1) : issue.message;
      button.appendChild(where);
      button.appendChild(text);
      button.addEventListener("click", function () { focusIssue(issue); });
      li.appendChild(button);
      list.appendChild(li);
    });
    markPanelIssues();
  }

  function focusIssue(issue) {
    if (issue.edge_index != null && def.edges[issue.edge_index]) {
      selection = { nodes: new Set(), edge: issue.edge_index };
      render();
      var e = def.edges[issue.edge_index];
      if (stepById(e.source)) centerOn(e.source);
      return;
    }
    var id = issue.step_id || (issuesByStepId(issue));
    if (id && stepById(id)) {
      selectOnly(id);
      centerOn(id);
    } else if ((issue.path || "").indexOf("input_schema") === 0) {
      selection = { nodes: new Set(), edge: null };
      render();
      showPanelFor();
    }
  }

  function issuesByStepId(issue) {
    var m = /^steps\[(\d+)\]/.exec(issue.path || "");
    var s = m && def.steps[+m[1]];
    return s && s.id;
  }

  // --- view: pan, zoom, fit -------------------------------------------------------------------

  function toWorld(clientX, clientY) {
    var r = svg.getBoundingClientRect();
    return { x: (clientX - r.left - view.x) / view.k, y: (clientY - r.top - view.y) / view.k };
  }

  function zoomAt(factor, clientX, clientY) {
    var r = svg.getBoundingClientRect();
    var cx = clientX == null ? r.left + r.width / 2 : clientX;
    var cy = clientY == null ? r.top + r.height / 2 : clientY;
    var before = toWorld(cx, cy);
    view.k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.k * factor));
    view.x = cx - r.left - before.x * view.k;
    view.y = cy - r.top - before.y * view.k;
    applyView();
  }

  function bounds(ids) {
    var box = null;
    steps().forEach(function (s) {
      if (ids && !ids.has(s.id)) return;
      var p = pos(s.id);
      var h = nodeHeight(s);
      if (!box) box = { x1: p.x, y1: p.y, x2: p.x + NODE_W, y2: p.y + h };
      box.x1 = Math.min(box.x1, p.x); box.y1 = Math.min(box.y1, p.y);
      box.x2 = Math.max(box.x2, p.x + NODE_W); box.y2 = Math.max(box.y2, p.y + h);
    });
    return box;
  }

  // Fit shows the whole graph, but never below a zoom at which steps can be read: a graph
  // too big for that opens on its starting steps, and the rest is a scroll (or the minimap)
  // away.
  function fit() {
    var box = graphBounds();
    var r = svg.getBoundingClientRect();
    if (!box || !r.width) { view = { x: 40, y: 40, k: 1 }; applyView(); return; }
    var pad = 40;
    var w = box.x2 - box.x1;
    var h = box.y2 - box.y1;
    var k = Math.min((r.width - pad * 2) / w, (r.height - pad * 2) / h, 1.2);
    view.k = Math.max(READABLE_ZOOM, k);
    if (w * view.k <= r.width - pad * 2) view.x = (r.width - w * view.k) / 2 - box.x1 * view.k;
    else view.x = pad - box.x1 * view.k;
    if (h * view.k <= r.height - pad * 2) {
      view.y = (r.height - h * view.k) / 2 - box.y1 * view.k;
    } else {
      var entry = steps().find(function (s) { return !def.edges.some(function (e) { return e && e.target === s.id; }); });
      var y = entry ? pos(entry.id).y + NODE_H / 2 : box.y1;
      view.y = r.height / 2 - y * view.k;
      view.y = Math.min(pad - box.y1 * view.k, Math.max(r.height - pad - box.y2 * view.k, view.y));
    }
    applyView();
  }

  // The steps' box, with the edges and labels that stray outside it.
  function graphBounds() {
    var box = bounds();
    if (!box) return null;
    var e = edgesLayer.childNodes.length ? edgesLayer.getBBox() : null;
    if (e && e.width) {
      box.x1 = Math.min(box.x1, e.x); box.y1 = Math.min(box.y1, e.y);
      box.x2 = Math.max(box.x2, e.x + e.width); box.y2 = Math.max(box.y2, e.y + e.height);
    }
    return box;
  }

  function centerOn(id) {
    var p = pos(id);
    var r = svg.getBoundingClientRect();
    view.x = r.width / 2 - (p.x + NODE_W / 2) * view.k;
    view.y = r.height / 2 - (p.y + NODE_H / 2) * view.k;
    applyView();
  }

  // --- selection ------------------------------------------------------------------------------

  function selectOnly(id) {
    selection = { nodes: new Set([id]), edge: null };
    render();
    showPanelFor();
  }

  function showPanelFor() {
    var id = selection.nodes.size === 1 ? Array.from(selection.nodes)[0] : "";
    if (id === panelStep && panelEl.firstElementChild) return;
    loadPanel(id);
  }

  // --- pointer interactions -------------------------------------------------------------------

  var gesture = null;

  svg.addEventListener("pointerdown", function (event) {
    if (event.button !== 0 && event.button !== 1) return;
    svg.focus({ preventScroll: true });
    var target = event.target;
    var outPort = target.closest("[data-port-out]");
    var nodeEl = target.closest("[data-node]");
    var edgeEl = target.closest("[data-edge]");
    var world = toWorld(event.clientX, event.clientY);
    svg.setPointerCapture(event.pointerId);
    if (outPort && !readOnly && event.button === 0) {
      var source = outPort.getAttribute("data-port-out");
      var port = outPort.getAttribute("data-port") || null;
      var s = stepById(source);
      var p = pos(source);
      gesture = { type: "connect", source: source, port: port, x1: p.x + NODE_W, y1: p.y + outPortY(s, port) };
      builder.classList.add("is-connecting");
      return;
    }
    if (nodeEl && event.button === 0) {
      var id = nodeEl.getAttribute("data-node");
      var additive = event.shiftKey || event.metaKey || event.ctrlKey;
      if (additive) {
        if (selection.nodes.has(id)) selection.nodes.delete(id); else selection.nodes.add(id);
        selection.edge = null;
        render();
        showPanelFor();
        gesture = { type: "none" };
        return;
      }
      var wasSelected = selection.nodes.has(id);
      if (!wasSelected) { selection = { nodes: new Set([id]), edge: null }; render(); }
      var origins = {};
      selection.nodes.forEach(function (n) { origins[n] = { x: pos(n).x, y: pos(n).y }; });
      gesture = { type: "drag", id: id, start: world, origins: origins, moved: false, before: serial(), wasSelected: wasSelected };
      return;
    }
    if (edgeEl && event.button === 0) {
      selection = { nodes: new Set(), edge: +edgeEl.getAttribute("data-edge") };
      render();
      showPanelFor();
      gesture = { type: "none" };
      return;
    }
    if (event.shiftKey && event.button === 0) {
      gesture = { type: "marquee", start: world, base: new Set(selection.nodes) };
      return;
    }
    gesture = { type: "pan", sx: event.clientX, sy: event.clientY, vx: view.x, vy: view.y, moved: false };
    builder.classList.add("is-panning");
  });

  svg.addEventListener("pointermove", function (event) {
    if (!gesture) return;
    var frameStart = performance.now();
    var world = toWorld(event.clientX, event.clientY);
    if (gesture.type === "pan") {
      var dx = event.clientX - gesture.sx;
      var dy = event.clientY - gesture.sy;
      if (Math.abs(dx) + Math.abs(dy) > 3) gesture.moved = true;
      view.x = gesture.vx + dx;
      view.y = gesture.vy + dy;
      applyView();
    } else if (gesture.type === "drag" && !readOnly) {
      var mx = world.x - gesture.start.x;
      var my = world.y - gesture.start.y;
      if (!gesture.moved && Math.abs(mx) + Math.abs(my) < 3 / view.k) return;
      gesture.moved = true;
      Object.keys(gesture.origins).forEach(function (id) {
        var o = gesture.origins[id];
        def.layout[id] = { x: Math.round(o.x + mx), y: Math.round(o.y + my) };
        var g = nodesLayer.querySelector('[data-node="' + cssEscape(id) + '"]');
        if (g) g.setAttribute("transform", "translate(" + def.layout[id].x + "," + def.layout[id].y + ")");
      });
      refreshEdgePaths();
      stats.dragFrames = (stats.dragFrames || 0) + 1;
      stats.dragFrameMaxMs = Math.max(stats.dragFrameMaxMs || 0, performance.now() - frameStart);
    } else if (gesture.type === "connect") {
      ghostEdge.setAttribute("d", curve(gesture.x1, gesture.y1, world.x, world.y));
      var overId = nodeAt(world);
      nodesLayer.querySelectorAll(".is-drop-target").forEach(function (n) { n.classList.remove("is-drop-target"); });
      var overNode = overId && overId !== gesture.source && nodesLayer.querySelector('[data-node="' + cssEscape(overId) + '"]');
      if (overNode) overNode.classList.add("is-drop-target");
    } else if (gesture.type === "marquee") {
      var x = Math.min(world.x, gesture.start.x);
      var y = Math.min(world.y, gesture.start.y);
      var w = Math.abs(world.x - gesture.start.x);
      var h = Math.abs(world.y - gesture.start.y);
      marquee.setAttribute("x", x); marquee.setAttribute("y", y);
      marquee.setAttribute("width", w); marquee.setAttribute("height", h);
      gesture.box = { x1: x, y1: y, x2: x + w, y2: y + h };
    }
  });

  // The step under a point of the canvas (the topmost), with a margin around its input port.
  function nodeAt(world) {
    var found = null;
    steps().forEach(function (s) {
      var p = pos(s.id);
      if (world.x >= p.x - 12 && world.x <= p.x + NODE_W && world.y >= p.y && world.y <= p.y + nodeHeight(s)) found = s.id;
    });
    return found;
  }

  function endGesture(event) {
    if (!gesture) return;
    var g = gesture;
    gesture = null;
    builder.classList.remove("is-panning", "is-connecting");
    if (g.type === "pan" && !g.moved) {
      selection = { nodes: new Set(), edge: null };
      render();
      showPanelFor();
    } else if (g.type === "drag") {
      if (g.moved && !readOnly) {
        var after = serial();
        if (after !== g.before) {
          undoStack.push(g.before);
          redoStack = [];
          lastCoalesce = null;
          afterChange({ keepPanel: true });
        }
      } else {
        selection = { nodes: new Set([g.id]), edge: null };
        render();
        showPanelFor();
      }
    } else if (g.type === "connect") {
      ghostEdge.setAttribute("d", "");
      nodesLayer.querySelectorAll(".is-drop-target").forEach(function (n) { n.classList.remove("is-drop-target"); });
      var target = event && nodeAt(toWorld(event.clientX, event.clientY));
      if (target) connect(g.source, target, g.port);
    } else if (g.type === "marquee") {
      marquee.setAttribute("width", 0); marquee.setAttribute("height", 0);
      if (g.box) {
        var picked = new Set(g.base);
        steps().forEach(function (s) {
          var p = pos(s.id);
          if (p.x < g.box.x2 && p.x + NODE_W > g.box.x1 && p.y < g.box.y2 && p.y + nodeHeight(s) > g.box.y1) picked.add(s.id);
        });
        selection = { nodes: picked, edge: null };
        render();
        showPanelFor();
      }
    }
  }

  svg.addEventListener("pointerup", endGesture);
  svg.addEventListener("pointercancel", function () { endGesture(null); });

  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    var unit = event.deltaMode === 1 ? 20 : 1;
    if (event.ctrlKey || event.metaKey) {
      zoomAt(Math.exp(-event.deltaY * unit * 0.0015), event.clientX, event.clientY);
    } else {
      // Scrolling moves the canvas (Shift+scroll sideways, as in a page); a pinch zooms.
      var dx = event.shiftKey && !event.deltaX ? event.deltaY : event.deltaX;
      var dy = event.shiftKey && !event.deltaX ? 0 : event.deltaY;
      view.x -= dx * unit;
      view.y -= dy * unit;
      applyView();
    }
  }, { passive: false });

  function cssEscape(s) { return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/"/g, '\\"'); }

  // --- palette: drag a kind onto the canvas ---------------------------------------------------

  var paletteDrag = null;

  document.querySelectorAll(".palette-item").forEach(function (item) {
    item.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      item.setPointerCapture(event.pointerId);
      paletteDrag = { kind: item.getAttribute("data-kind"), sx: event.clientX, sy: event.clientY, ghost: null };
    });
    item.addEventListener("pointermove", function (event) {
      if (!paletteDrag) return;
      if (!paletteDrag.ghost) {
        if (Math.abs(event.clientX - paletteDrag.sx) + Math.abs(event.clientY - paletteDrag.sy) < 5) return;
        var ghost = document.createElement("div");
        ghost.className = "drag-ghost";
        ghost.textContent = kinds[paletteDrag.kind].label;
        document.body.appendChild(ghost);
        paletteDrag.ghost = ghost;
        builder.classList.add("is-dropping");
      }
      paletteDrag.ghost.style.left = event.clientX + "px";
      paletteDrag.ghost.style.top = event.clientY + "px";
      var r = wrap.getBoundingClientRect();
      var inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
      wrap.classList.toggle("is-drop-target", inside);
    });
    item.addEventListener("pointerup", function (event) {
      var drag = paletteDrag;
      paletteDrag = null;
      if (!drag || !drag.ghost) return; // a click: handled below
      drag.ghost.remove();
      builder.classList.remove("is-dropping");
      wrap.classList.remove("is-drop-target");
      var r = wrap.getBoundingClientRect();
      if (event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom) {
        var w = toWorld(event.clientX, event.clientY);
        addStep(drag.kind, w.x - NODE_W / 2, w.y - NODE_H / 2);
      }
      item.dataset.dragged = "1";
    });
    item.addEventListener("click", function () {
      if (item.dataset.dragged) { delete item.dataset.dragged; return; }
      var r = svg.getBoundingClientRect();
      var w = toWorld(r.left + r.width / 2, r.top + r.height / 2);
      var offset = (steps().length % 5) * 24;
      addStep(item.getAttribute("data-kind"), w.x - NODE_W / 2 + offset, w.y - NODE_H / 2 + offset);
    });
  });

  // --- keyboard -------------------------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    var t = event.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    var mod = event.ctrlKey || event.metaKey;
    var key = event.key.toLowerCase();
    if (typing) return;
    if (mod && key === "z") { event.preventDefault(); if (event.shiftKey) redo(); else undo(); return; }
    if (mod && key === "y") { event.preventDefault(); redo(); return; }
    if (mod && key === "d") { event.preventDefault(); if (!readOnly) duplicateSelection(); return; }
    if (mod && key === "a") {
      event.preventDefault();
      selection = { nodes: new Set(steps().map(function (s) { return s.id; })), edge: null };
      render(); showPanelFor(); return;
    }
    if (mod || event.altKey) return;
    if ((key === "delete" || key === "backspace") && !readOnly) { event.preventDefault(); deleteSelection(); return; }
    if (key === "f") { event.preventDefault(); fit(); return; }
    if (key === "l" && !readOnly) { event.preventDefault(); autoLayout(); return; }
    if (key === "+" || key === "=") { zoomAt(1.2); return; }
    if (key === "-") { zoomAt(1 / 1.2); return; }
    var arrows = { arrowleft: [1, 0], arrowright: [-1, 0], arrowup: [0, 1], arrowdown: [0, -1] };
    if (arrows[key] && t === svg) {
      // The arrow keys move the canvas, as scrolling does (Shift: a bigger step).
      event.preventDefault();
      var stride = event.shiftKey ? 240 : 60;
      view.x += arrows[key][0] * stride;
      view.y += arrows[key][1] * stride;
      applyView();
      return;
    }
    if (key === "escape") { selection = { nodes: new Set(), edge: null }; render(); showPanelFor(); }
  });

  // --- toolbar --------------------------------------------------------------------------------

  builder.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button || button.disabled) return;
    var action = button.getAttribute("data-action");
    var actions = {
      undo: undo,
      redo: redo,
      "zoom-in": function () { zoomAt(1.2); },
      "zoom-out": function () { zoomAt(1 / 1.2); },
      fit: fit,
      layout: autoLayout,
      input: function () { selection = { nodes: new Set(), edge: null }; render(); loadPanel(""); },
      publish: publish,
      duplicate: duplicateSelection,
      "delete": deleteSelection,
    };
    if (actions[action]) { event.preventDefault(); actions[action](); }
  });

  // --- autosave -------------------------------------------------------------------------------

  function dirty() { return serial() !== savedJson; }

  function scheduleSave(delay) {
    if (readOnly || conflict) return;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, delay == null ? SAVE_DELAY_MS : delay);
  }

  function updateSaveState(text, tone) {
    if (!saveStateEl) return;
    var unsaved = Object.keys(localIssues).map(function (key) { return localIssues[key]; })[0];
    if (!text) {
      if (conflict) { text = "Not saved: conflict"; tone = "bad"; }
      else if (unsaved) { text = "Not saved: invalid JSON in " + unsaved.where; tone = "bad"; }
      else if (saving) { text = "Saving…"; tone = "busy"; }
      else if (dirty()) { text = "Unsaved changes"; tone = "busy"; }
      else { text = "Saved"; tone = "ok"; }
    }
    saveStateEl.textContent = text;
    saveStateEl.setAttribute("data-tone", tone || "ok");
    saveStateEl.title = "Draft revision " + revision;
    builder.setAttribute("data-revision", String(revision));
    builder.setAttribute("data-save-state", tone || "ok");
  }

  function post(url, body, json) {
    var headers = { "X-CSRFToken": csrfToken, "X-Requested-With": "fetch" };
    if (json) headers["Content-Type"] = "application/json";
    return fetch(url, { method: "POST", headers: headers, body: body, credentials: "same-origin" });
  }

  function save() {
    clearTimeout(saveTimer);
    if (readOnly || conflict) return Promise.resolve(false);
    if (saving) { saveAgain = true; return savingPromise; }
    if (!dirty()) { updateSaveState(); return Promise.resolve(true); }
    var sent = serial();
    saving = true;
    updateSaveState();
    savingPromise = post(data.urls.draft, JSON.stringify({ revision: revision, definition: JSON.parse(sent) }), true)
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (response.status === 409) { showConflict(body); return false; }
          if (!response.ok) { updateSaveState(body.message || "Not saved", "bad"); return false; }
          revision = body.revision;
          savedJson = sent;
          var before = JSON.stringify([issues, ports]);
          issues = body.issues || [];
          ports = body.ports || {};
          if (!dirty()) dropLocalCopy();
          if (JSON.stringify([issues, ports]) !== before) render();
          var changes = document.getElementById("changes-chip");
          if (changes) changes.hidden = !body.unpublished;
          return true;
        });
      })
      .catch(function () {
        updateSaveState("Offline: kept in this browser", "bad");
        setTimeout(function () { scheduleSave(0); }, 4000);
        return false;
      })
      .then(function (ok) {
        saving = false;
        updateSaveState();
        if (saveAgain || (ok && dirty())) { saveAgain = false; return save(); }
        return ok;
      });
    return savingPromise;
  }
  var savingPromise = Promise.resolve(true);

  function showConflict(body) {
    conflict = body;
    var who = body.updatedBy || "Someone else";
    banner(
      who + " changed this draft since you opened it (now revision " + body.revision + "). " +
        "Your latest changes are kept in this browser.",
      [
        { label: "Load their version", primary: false, run: function () { location.reload(); } },
        {
          label: "Keep mine (overwrite)", primary: true, run: function () {
            revision = body.revision;
            conflict = null;
            hideBanner();
            save();
          },
        },
      ],
      "conflict"
    );
    updateSaveState();
  }

  // The page is going away with unsaved changes: hand them to the browser to send.
  window.addEventListener("pagehide", function () {
    if (readOnly || conflict || !dirty()) return;
    keepLocalCopy();
    var form = new FormData();
    form.append("csrfmiddlewaretoken", csrfToken);
    form.append("revision", String(revision));
    form.append("definition", serial());
    try { navigator.sendBeacon(data.urls.draft, form); } catch (e) { /* the local copy remains */ }
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) location.reload(); });

  // --- the local copy -------------------------------------------------------------------------

  function keepLocalCopy() {
    if (readOnly) return;
    try {
      localStorage.setItem(storageKey, JSON.stringify({ revision: revision, at: new Date().toISOString(), definition: def }));
    } catch (e) { /* storage full or disabled: autosave still runs */ }
  }

  function dropLocalCopy() {
    try { localStorage.removeItem(storageKey); } catch (e) { /* ignore */ }
  }

  function offerLocalCopy() {
    if (readOnly) return;
    var stored = null;
    try { stored = JSON.parse(localStorage.getItem(storageKey) || "null"); } catch (e) { stored = null; }
    if (!stored || !stored.definition) return;
    var theirs = JSON.stringify(normalise(stored.definition));
    if (theirs === serial()) { dropLocalCopy(); return; }
    var when = new Date(stored.at);
    banner(
      "This browser has changes to this draft that were not saved (from " + when.toLocaleString() + ").",
      [
        { label: "Discard them", run: function () { dropLocalCopy(); hideBanner(); } },
        {
          label: "Restore them", primary: true, run: function () {
            hideBanner();
            change(function () { def = normalise(stored.definition); });
            selection = { nodes: new Set(), edge: null };
            render();
            reloadPanel();
            fit();
          },
        },
      ],
      "restore"
    );
  }

  // --- banner and toast -----------------------------------------------------------------------

  function banner(text, actions, kind) {
    var b = document.getElementById("banner");
    document.getElementById("banner-text").textContent = text;
    var holder = document.getElementById("banner-actions");
    holder.textContent = "";
    actions.forEach(function (a) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button small" + (a.primary ? " primary" : "");
      button.textContent = a.label;
      button.addEventListener("click", a.run);
      holder.appendChild(button);
    });
    b.setAttribute("data-kind", kind || "");
    b.hidden = false;
  }

  function hideBanner() { document.getElementById("banner").hidden = true; }

  var toastTimer = null;
  function toast(text, tone, link) {
    var t = document.getElementById("toast");
    t.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.label;
      t.appendChild(document.createTextNode(" "));
      t.appendChild(a);
    }
    t.setAttribute("data-tone", tone || "");
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, link ? 9000 : 4000);
  }

  // --- publish --------------------------------------------------------------------------------

  function publish() {
    var button = document.getElementById("publish");
    if (Object.keys(localIssues).length) return toast("Fix the invalid JSON first: it is not saved.", "bad");
    button.disabled = true;
    save().then(function (ok) {
      if (!ok || dirty()) { button.disabled = false; return toast("Save the draft before publishing.", "bad"); }
      var form = new FormData();
      form.append("revision", String(revision));
      return post(data.urls.publish, form, false).then(function (response) {
        return response.json().then(function (body) {
          button.disabled = false;
          if (response.status === 409) return showConflict(body);
          if (!response.ok) {
            if (body.issues && body.issues.length) { issues = body.issues; render(); }
            return toast(body.message || "Could not publish.", "bad");
          }
          var changes = document.getElementById("changes-chip");
          if (changes) changes.hidden = true;
          var chip = document.getElementById("version-chip");
          if (chip) chip.textContent = "v" + body.number + " published";
          var run = document.getElementById("run-link");
          if (run) run.classList.remove("is-hidden");
          toast(body.message, "ok", run ? { href: body.runUrl, label: "Start a run →" } : null);
        });
      });
    }).catch(function () { button.disabled = false; toast("Could not reach the server.", "bad"); });
  }

  // --- the config panel -----------------------------------------------------------------------

  function loadPanel(stepId) {
    panelStep = stepId;
    var values = { step: stepId, definition: serial(), readonly: readOnly ? "1" : "0" };
    return htmx.ajax("POST", data.urls.panel, {
      source: panelEl, target: panelEl, swap: "innerHTML", values: values,
      headers: { "X-CSRFToken": csrfToken },
    });
  }

  function reloadPanel() {
    var id = selection.nodes.size === 1 ? Array.from(selection.nodes)[0] : "";
    loadPanel(id);
  }

  // Edges changed (new references upstream) or a step vanished: the panel may be stale.
  var panelShape = null;
  function refreshPanelIfNeeded() {
    var shape = JSON.stringify([def.edges, def.input_schema, steps().map(function (s) { return [s.id, s.name]; })]);
    if (panelShape !== null && shape !== panelShape && panelStep !== "") {
      var form = panelEl.querySelector(".panel-form");
      var editing = form && form.contains(document.activeElement);
      if (!editing) reloadPanel();
    }
    panelShape = shape;
  }

  panelEl.addEventListener("htmx:afterSwap", function () {
    // The panel shows the draft again: text that was not valid JSON is gone with the old one.
    if (Object.keys(localIssues).length) { localIssues = {}; renderProblems(); render(); updateSaveState(); }
    panelShape = JSON.stringify([def.edges, def.input_schema, steps().map(function (s) { return [s.id, s.name]; })]);
    markPanelIssues();
  });

  var panelTimer = null;
  panelEl.addEventListener("input", function (event) {
    if (readOnly || event.target.closest("[data-trial-url]")) return;
    clearTimeout(panelTimer);
    var target = event.target;
    panelTimer = setTimeout(function () { applyPanel(target); }, 200);
  });
  panelEl.addEventListener("change", function (event) {
    if (readOnly || event.target.closest("[data-trial-url]")) return;
    clearTimeout(panelTimer);
    applyPanel(event.target);
  });
  panelEl.addEventListener("focusin", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-templated")) lastTemplateField = event.target;
  });

  panelEl.addEventListener("click", function (event) {
    var t = event.target;
    var ref = t.closest("[data-insert]");
    if (ref) { insertReference(ref.getAttribute("data-insert")); return; }
    if (t.closest("[data-action='test-step']")) { testStep(t.closest("[data-action='test-step']")); return; }
    if (t.closest("[data-add-row]")) { addRow(t.closest("[data-type='rows']")); return; }
    if (t.closest("[data-remove-row]")) {
      var field = t.closest("[data-type='rows']");
      t.closest("[data-row]").remove();
      renumberRows(field);
      applyPanel(field);
      return;
    }
    if (t.closest("[data-add-input]")) { addInputRow(); return; }
    if (t.closest("[data-remove-input]")) {
      t.closest("[data-input-row]").remove();
      applyPanel(panelEl.querySelector("[data-panel='input']"));
    }
  });

  // "Test this step": the server runs the step of the draft as it is in this browser, with
  // the sample values typed here, and answers with its output or its error.
  function testStep(button) {
    var box = button.closest("[data-trial-url]");
    var out = box.querySelector("[data-trial-out]");
    var form = new FormData();
    form.append("definition", serial());
    form.append("step", panelStep || "");
    form.append("input", box.querySelector("[data-trial-input]").value);
    var outputs = box.querySelector("[data-trial-outputs]");
    form.append("outputs", outputs ? outputs.value : "{}");
    button.disabled = true;
    button.textContent = "Testing…";
    post(box.getAttribute("data-trial-url"), form, false)
      .then(function (response) {
        if (response.status >= 500 || response.status === 403 || response.status === 404) {
          out.textContent = "The step could not be tried (" + response.status + "): reload the page and try again.";
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) out.innerHTML = html;
        out.scrollIntoView({ block: "nearest" });
      })
      .catch(function () { out.textContent = "Could not reach the server; nothing was tried."; })
      .then(function () { button.disabled = false; button.textContent = "Test this step"; });
  }

  function insertReference(text) {
    var field = lastTemplateField && panelEl.contains(lastTemplateField) ? lastTemplateField
      : panelEl.querySelector("[data-templated]");
    if (!field) return;
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? field.value.length : field.selectionEnd;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.selectionStart = field.selectionEnd = start + text.length;
    applyPanel(field);
  }

  var rowCounter = 0;
  function addRow(field) {
    var template = field.querySelector("template[data-row-template]");
    var row = template.content.firstElementChild.cloneNode(true);
    row.querySelectorAll("[data-key]").forEach(function (control) {
      var id = "row-" + (++rowCounter) + "-" + control.getAttribute("data-key");
      control.id = id;
      var label = control.parentNode.querySelector("label");
      if (label) label.setAttribute("for", id);
    });
    field.querySelector("[data-rows]").appendChild(row);
    renumberRows(field);
    var first = row.querySelector("[data-key]");
    if (first) first.focus();
    applyPanel(field);
  }

  function renumberRows(field) {
    var base = field.getAttribute("data-path");
    field.querySelectorAll("[data-row]").forEach(function (row, i) {
      row.querySelectorAll(".cell").forEach(function (cell) {
        var control = cell.querySelector("[data-key]");
        cell.setAttribute("data-field", base + "[" + i + "]." + control.getAttribute("data-key"));
      });
    });
  }

  function addInputRow() {
    var form = panelEl.querySelector("[data-panel='input']");
    var template = form.querySelector("template[data-input-template]");
    var row = template.content.firstElementChild.cloneNode(true);
    var empty = form.querySelector("[data-input-empty]");
    if (empty) empty.remove();
    form.querySelector("[data-input-rows]").appendChild(row);
    row.querySelector("[data-in='name']").focus();
  }

  var NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  var UNSET = {};

  function readControl(control) {
    var type = control.getAttribute("data-type");
    var text = control.value;
    if (type === "boolean") return control.checked;
    if (type === "string") return text === "" ? UNSET : text;
    if (type === "enum") return text === "" ? UNSET : text;
    if (type === "number" || type === "integer") {
      var v = text.trim();
      if (v === "") return UNSET;
      return NUMBER.test(v) ? Number(v) : v; // a template, or a typo the server will name
    }
    if (type === "json" || type === "any") {
      var trimmed = text.trim();
      if (trimmed === "") return UNSET;
      // "any": text stays text (templates too); what looks like a JSON object or list is one.
      if (type === "any" && (!/^[[{]/.test(trimmed) || /^\{[{%#]/.test(trimmed))) return text;
      try { return JSON.parse(trimmed); }
      catch (e) { throw new Error("Not valid JSON yet, so not saved: " + e.message); }
    }
    return text;
  }

  function setPath(obj, path, value) {
    var parts = path.split(".");
    var last = parts.pop();
    var holder = obj;
    for (var i = 0; i < parts.length; i++) {
      if (!holder[parts[i]] || typeof holder[parts[i]] !== "object") holder[parts[i]] = {};
      holder = holder[parts[i]];
    }
    if (value === UNSET) delete holder[last]; else holder[last] = value;
    if (parts.length === 1 && parts[0] === "retry" && !Object.keys(obj.retry).length) delete obj.retry;
  }

  function applyPanel(origin) {
    var form = panelEl.querySelector(".panel-form");
    if (!form || readOnly) return;
    if (form.getAttribute("data-panel") === "input") return applyInputPanel(form);
    var id = form.getAttribute("data-step");
    var step = stepById(id);
    if (!step) return;
    var updated = clone(step);
    if (!updated.config || typeof updated.config !== "object") updated.config = {};
    var localBefore = JSON.stringify(localIssues);
    form.querySelectorAll("[data-path]").forEach(function (control) {
      var path = control.getAttribute("data-path");
      if (control.getAttribute("data-type") === "tools") { applyTools(updated, path, control); return; }
      if (control.getAttribute("data-type") === "rows") {
        setPath(updated, path, readRows(control));
        return;
      }
      if (control.closest("[data-type='rows']")) return;
      var key = id + "|" + path;
      try {
        setPath(updated, path, readControl(control));
        localError(control, "");
        delete localIssues[key];
      } catch (e) {
        localError(control, e.message);
        localIssues[key] = localIssue(form, control, id, path);
      }
    });
    var field = origin && origin.getAttribute ? (origin.getAttribute("data-path") || origin.getAttribute("data-key") || "") : "";
    change(function () {
      var index = def.steps.indexOf(step);
      def.steps[index] = updated;
    }, { coalesce: "panel:" + id + ":" + field, keepPanel: true, saveDelay: 300 });
    if (JSON.stringify(localIssues) !== localBefore) { render(); updateSaveState(); }
    var title = form.querySelector(".panel-title");
    if (title) title.textContent = updated.name || updated.id;
  }

  function localIssue(form, control, id, path) {
    var holder = control.closest("[data-field]");
    var label = holder && holder.querySelector(".plabel, .cell-label");
    var fieldLabel = label ? label.textContent.replace("*", "").trim() : path;
    var title = form.querySelector(".panel-title");
    var where = (title ? title.textContent.trim() : id) + " → " + fieldLabel;
    var advice = "enter valid JSON (until it is, this field is not saved)";
    var index = def.steps.findIndex(function (s) { return s && s.id === id; });
    return {
      path: "steps[" + index + "]." + path, where: where, advice: advice,
      message: where + ": " + advice, step_id: id, edge_index: null, local: true,
    };
  }

  function readRows(fieldset) {
    var rows = [];
    fieldset.querySelectorAll("[data-row]").forEach(function (row) {
      var item = {};
      row.querySelectorAll("[data-key]").forEach(function (control) {
        var v;
        try { v = readControl(control); } catch (e) { v = control.value; }
        item[control.getAttribute("data-key")] = v === UNSET ? "" : v;
      });
      rows.push(item);
    });
    return rows;
  }

  // An agent step's tools: the Python tools ticked, in the panel's order, then the HTTP
  // tools; each tool's other settings (data-extra) are kept as they were.
  function readTools(fieldset) {
    var base = fieldset.getAttribute("data-path");
    var tools = [];
    var invalid = null;
    fieldset.querySelectorAll("[data-tool]").forEach(function (card) {
      var spec = {};
      try { spec = JSON.parse(card.getAttribute("data-extra") || "{}"); } catch (e) { spec = {}; }
      if (card.getAttribute("data-tool") === "python") {
        var picked = card.querySelector("[data-tool-key='picked']").checked;
        card.classList.toggle("is-picked", picked);
        if (!picked) { card.removeAttribute("data-field"); return; }
        spec.type = "python";
        spec.name = card.getAttribute("data-name");
      } else {
        spec.type = "http";
        card.querySelectorAll("[data-tool-key]").forEach(function (control) {
          var key = control.getAttribute("data-tool-key");
          if (key === "needs_approval") return;
          try {
            var v = readControl(control);
            localError(control, "");
            if (v === UNSET) delete spec[key]; else spec[key] = v;
          } catch (e) { localError(control, e.message); invalid = e; }
        });
        if (!spec.name) spec.name = "";
      }
      if (card.querySelector("[data-tool-key='needs_approval']").checked) spec.needs_approval = true;
      else delete spec.needs_approval;
      var where = base + "[" + tools.length + "]";
      card.setAttribute("data-field", where);
      card.querySelectorAll("[data-tool-field]").forEach(function (cell) {
        cell.setAttribute("data-field", where + "." + cell.getAttribute("data-tool-field"));
      });
      tools.push(spec);
    });
    if (invalid) throw invalid;
    return tools;
  }

  function applyTools(updated, path, fieldset) {
    try { setPath(updated, path, readTools(fieldset)); }
    catch (e) { /* a tool's JSON is not valid yet: the step keeps its tools as they were */ }
  }

  var toolCounter = 0;
  panelEl.addEventListener("click", function (event) {
    if (readOnly) return;
    var add = event.target.closest("[data-add-tool]");
    var remove = event.target.closest("[data-remove-tool]");
    var fieldset = (add || remove) && (add || remove).closest("[data-type='tools']");
    if (!fieldset) return;
    if (remove) {
      remove.closest("[data-tool]").remove();
    } else {
      var card = fieldset.querySelector("template[data-http-template]").content.firstElementChild.cloneNode(true);
      var n = ++toolCounter;
      card.querySelectorAll("[data-tool-key]").forEach(function (control) {
        var id = "new-tool-" + n + "-" + control.getAttribute("data-tool-key");
        var label = control.id && card.querySelector('label[for="' + control.id + '"]');
        control.id = id;
        if (label) label.setAttribute("for", id);
      });
      var empty = fieldset.querySelector("[data-http-empty]");
      if (empty) empty.remove();
      fieldset.querySelector("[data-http-tools]").appendChild(card);
      card.querySelector("[data-tool-key='name']").focus();
    }
    applyPanel(fieldset);
  });

  function applyInputPanel(form) {
    var schema = clone(def.input_schema || {});
    schema.type = "object";
    var properties = {};
    var required = [];
    form.querySelectorAll("[data-input-row]").forEach(function (row) {
      var name = row.querySelector("[data-in='name']").value.trim();
      if (!name) return;
      var extra = {};
      try { extra = JSON.parse(row.getAttribute("data-extra") || "{}"); } catch (e) { extra = {}; }
      var prop = Object.assign({}, extra, { type: row.querySelector("[data-in='type']").value });
      var description = row.querySelector("[data-in='description']").value.trim();
      if (description) prop.description = description;
      properties[name] = prop;
      if (row.querySelector("[data-in='required']").checked) required.push(name);
    });
    schema.properties = properties;
    schema["x-order"] = Object.keys(properties); // Postgres sorts object keys its own way
    if (required.length) schema.required = required; else delete schema.required;
    change(function () { def.input_schema = schema; }, { coalesce: "input", keepPanel: true, saveDelay: 300 });
  }

  function localError(control, message) {
    var holder = control.closest("[data-field]");
    var p = holder && holder.querySelector("[data-error]");
    if (!p) return;
    if (message) { p.textContent = message; p.hidden = false; p.setAttribute("data-local", "1"); }
    else if (p.getAttribute("data-local")) { p.textContent = ""; p.hidden = true; p.removeAttribute("data-local"); }
  }

  function parentPath(path) {
    var m = /(\.[^.[\]]+|\[\d+\]|\['[^']*'\])$/.exec(path);
    return m ? path.slice(0, m.index) : "";
  }

  // Show each problem of the panel's step under its field (or at the foot of the panel).
  function markPanelIssues() {
    var form = panelEl.querySelector(".panel-form");
    if (!form) return;
    form.querySelectorAll("[data-error]").forEach(function (p) {
      if (!p.getAttribute("data-local")) { p.textContent = ""; p.hidden = true; }
    });
    form.querySelectorAll(".is-invalid").forEach(function (n) { n.classList.remove("is-invalid"); });
    var foot = form.querySelector("[data-panel-issues]");
    foot.textContent = "";
    var mine;
    var prefix;
    if (form.getAttribute("data-panel") === "input") {
      mine = issues.filter(function (i) { return (i.path || "").indexOf("input_schema") === 0; });
      prefix = "";
    } else {
      var id = form.getAttribute("data-step");
      var index = def.steps.findIndex(function (s) { return s && s.id === id; });
      prefix = "steps[" + index + "].";
      mine = issues.filter(function (i) {
        return i.edge_index == null && (i.step_id === id || (i.path || "").indexOf(prefix) === 0);
      });
    }
    var leftover = [];
    mine.forEach(function (issue) {
      var path = (issue.path || "").indexOf(prefix) === 0 ? issue.path.slice(prefix.length) : "";
      var holder = null;
      while (path && !holder) {
        holder = form.querySelector('[data-field="' + cssEscape(path) + '"]');
        if (!holder) path = parentPath(path);
      }
      if (holder) {
        var p = holder.querySelector("[data-error]");
        if (p && !p.getAttribute("data-local")) {
          // Under its field the field's label is already there: say what to do.
          var said = issue.advice ? issue.advice.charAt(0).toUpperCase() + issue.advice.slice(1) + "." : issue.message;
          p.textContent = p.textContent ? p.textContent + " " + said : said;
          p.hidden = false;
          holder.classList.add("is-invalid");
          return;
        }
      }
      leftover.push(issue);
    });
    foot.hidden = leftover.length === 0;
    leftover.forEach(function (issue) {
      var p = document.createElement("p");
      p.className = "field-error";
      p.textContent = issue.message;
      foot.appendChild(p);
    });
  }

  // --- start ----------------------------------------------------------------------------------

  render();
  measureCanvas();
  fit();
  updateSaveState();
  loadPanel("");
  offerLocalCopy();
  var loadMs = performance.now();
  builder.setAttribute("data-ready", "1");
  builder.setAttribute("data-render-ms", stats.lastRenderMs.toFixed(1));
  builder.setAttribute("data-script-ms", (loadMs - t0).toFixed(1));
  window.vectorbeaBuilder = {
    stats: stats,
    loadMs: loadMs,
    definition: function () { return clone(def); },
    render: function () { render(); return stats.lastRenderMs; },
    save: save,
    fit: fit,
    autoLayout: function () { var s = performance.now(); layoutPositions(); render(); return performance.now() - s; },
  };
})();
