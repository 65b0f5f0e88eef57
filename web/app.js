// The nas dashboard: one small script, no dependencies, no network but this
// server's own API. Each page renders from /api/v1 and, where it shows
// something live, refreshes on the server's events (SSE).
"use strict";

const API = "/api/v1";
const main = document.getElementById("main");
// The nodes to render, nested lists flattened and empty parts (null, undefined, false) left out.
function present(nodes) { return nodes.flat(Infinity).filter(n => n !== null && n !== undefined && n !== false); }
// Replaces the page's content (skipping empty parts).
function show(...nodes) { main.replaceChildren(...present(nodes)); }

// ---------- helpers ----------
// Replaces a live region's children only when what they show changed, so a
// refresh with nothing new does not swap nodes out from under the pointer
// (a click in flight, a selection, a focused button).
function patch(container, ...nodes) {
  const probe = container.cloneNode(false);
  probe.append(...present(nodes));
  if (probe.innerHTML === container.innerHTML) return;
  container.replaceChildren(...probe.childNodes);
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c.nodeType ? c : String(c));
  return node;
}
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c.nodeType ? c : document.createTextNode(String(c)));
  return node;
}
const fmt = {
  pct: v => (v === null || v === undefined) ? "–" : (v * 100).toFixed(2) + "%",
  ms: v => (v === null || v === undefined) ? "–" : (v < 1 ? v.toFixed(3) : v.toFixed(2)) + " ms",
  num: v => (v === null || v === undefined) ? "–" : Number(v).toLocaleString("en-US"),
  r: v => (v === null || v === undefined) ? "–" : v.toFixed(4),
  when: ms => ms ? new Date(ms).toLocaleString() : "–",
  short: v => {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return String(v);
  },
};
const badge = s => el("span", { class: "badge " + s, text: s });
function bar(fraction, label) {
  const b = el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": Math.round(fraction * 100), "aria-label": label || "progress" });
  b.append(el("span", { style: `width:${Math.max(0, Math.min(1, fraction)) * 100}%` }));
  return b;
}

// ---------- API ----------
function token() { return localStorage.getItem("nas-token") || ""; }
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status; this.field = body && body.error && body.error.field; this.code = body && body.error && body.error.code;
  }
}
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["authorization"] = "Bearer " + token();
  // Writes are JSON (the server refuses others: no cross-site forms).
  if (options.body || (options.method && options.method !== "GET")) headers["content-type"] = "application/json";
  const res = await fetch(API + path, Object.assign({}, options, { headers }));
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (res.status === 401) document.getElementById("token-form").hidden = false;
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}
// Calls `refresh` (at most every 400 ms) whenever the server reports an event.
function live(query, refresh) {
  if (!window.EventSource) return null;
  let timer = null;
  const source = new EventSource(API + "/events" + query);
  const kick = () => { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 400); };
  for (const name of ["trials_queued", "trial_claimed", "trial_progressed", "trial_finished", "search_finished", "lagged"]) {
    source.addEventListener(name, kick);
  }
  window.addEventListener("pagehide", () => source.close());
  return source;
}
function fail(e) {
  show(el("h1", { text: e.status === 404 ? "Not found" : "Something went wrong" }),
    el("p", { class: "error", text: e.message }));
}

// ---------- charts ----------
function ticks(min, max, count) {
  if (!(max > min)) { max = min + 1; }
  const step0 = (max - min) / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}
// A chart frame: returns { root, x(v), y(v) } with axes, grid and labels drawn.
function frame({ width = 560, height = 300, xmin, xmax, ymin, ymax, xlabel, ylabel, xfmt = String, yfmt = String, log = false }) {
  const m = { l: 58, r: 14, t: 12, b: 42 };
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const lx = v => log ? Math.log10(v) : v;
  const [a, b] = [lx(xmin), lx(xmax)];
  const x = v => m.l + (b > a ? (lx(v) - a) / (b - a) : 0.5) * W;
  const y = v => m.t + H - (ymax > ymin ? (v - ymin) / (ymax - ymin) : 0.5) * H;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  for (const t of ticks(ymin, ymax, 5)) {
    root.append(svg("line", { class: "gridline", x1: m.l, x2: m.l + W, y1: y(t), y2: y(t) }),
      svg("text", { x: m.l - 6, y: y(t) + 4, "text-anchor": "end" }, yfmt(t)));
  }
  const xt = log ? ticks(Math.floor(a), Math.ceil(b), 6).filter(Number.isInteger).map(e => Math.pow(10, e)).filter(v => v >= xmin * 0.999 && v <= xmax * 1.001)
    : ticks(xmin, xmax, 6);
  for (const t of xt) {
    root.append(svg("line", { class: "gridline", x1: x(t), x2: x(t), y1: m.t, y2: m.t + H }),
      svg("text", { x: x(t), y: m.t + H + 16, "text-anchor": "middle" }, xfmt(t)));
  }
  root.append(svg("line", { class: "axis", x1: m.l, x2: m.l + W, y1: m.t + H, y2: m.t + H }),
    svg("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: m.t + H }),
    svg("text", { x: m.l + W / 2, y: height - 6, "text-anchor": "middle" }, xlabel),
    svg("text", { x: 14, y: m.t + H / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${m.t + H / 2})` }, ylabel));
  return { root, x, y, m, W, H };
}

function scatter(pareto, target) {
  const pts = pareto.points, rej = pareto.rejected || [], tested = pareto.tested || [];
  const lat = pts.map(p => p.latency_ms).concat(rej.map(r => r.latency_ms), tested.map(t => t.latency_ms), target ? [target] : []);
  if (!lat.length) return el("p", { class: "muted", text: "No trained trials yet." });
  const xmin = Math.min(...lat) * 0.8, xmax = Math.max(...lat) * 1.25;
  const accs = pts.map(p => p.accuracy).concat(tested.map(t => t.test_accuracy));
  const ymin = accs.length ? Math.max(0, Math.floor(Math.min(...accs) * 10) / 10 - 0.05) : 0;
  const f = frame({ xmin, xmax, ymin, ymax: 1, log: xmax / xmin > 20, xlabel: "latency p50 (ms, batch 1)", ylabel: "validation accuracy",
    xfmt: v => v < 1 ? v.toPrecision(2) : String(+v.toPrecision(3)), yfmt: v => Math.round(v * 100) + "%" });
  if (target) f.root.append(svg("line", { class: "target", x1: f.x(target), x2: f.x(target), y1: f.m.t, y2: f.m.t + f.H }),
    svg("text", { x: f.x(target) + 4, y: f.m.t + 12 }, `target ${target} ms`));
  const front = pts.filter(p => p.on_front);
  if (front.length > 1) f.root.append(svg("polyline", { class: "frontline", points: front.map(p => `${f.x(p.latency_ms)},${f.y(p.accuracy)}`).join(" ") }));
  const go = id => () => { location.href = "/trials/" + id; };
  for (const p of pts.filter(p => !p.on_front).concat(front)) {
    const rung = p.rung || 0;
    f.root.append(svg("circle", { class: "point" + (p.on_front ? " front" : "") + (p.baseline ? " baseline" : "") + (p.state === "stopped" ? " stopped" : ""), cx: f.x(p.latency_ms), cy: f.y(p.accuracy), r: (p.on_front ? 5 : 3.5) + 1.5 * rung, tabindex: p.on_front ? 0 : null,
      "data-rung": rung, onclick: null }, svg("title", {}, `${p.baseline ? "zoo baseline " + p.baseline : "trial " + p.trial_id + " (#" + p.index + ")"}: ${fmt.pct(p.accuracy)}, ${fmt.ms(p.latency_ms)}, reward ${fmt.r(p.reward)}, rung ${rung + 1}${p.state === "stopped" ? " (stopped early)" : ""}`)));
    f.root.lastChild.addEventListener("click", go(p.trial_id));
    f.root.lastChild.addEventListener("keydown", e => { if (e.key === "Enter") go(p.trial_id)(); });
  }
  for (const p of pts.filter(p => p.baseline)) {
    f.root.append(svg("text", { class: "baseline-label", x: f.x(p.latency_ms) + 7, y: f.y(p.accuracy) - 6 }, p.baseline));
  }
  // The tested front: final models on test accuracy, a step line through the non-dominated ones.
  const testedFront = tested.filter(t => t.on_front);
  if (testedFront.length) {
    const steps = testedFront.flatMap((t, k) => k ? [[t.latency_ms, testedFront[k - 1].test_accuracy], [t.latency_ms, t.test_accuracy]] : [[t.latency_ms, t.test_accuracy]]);
    steps.push([xmax, testedFront[testedFront.length - 1].test_accuracy]);
    f.root.append(svg("polyline", { class: "tested-line", points: steps.map(([x, y]) => `${f.x(x)},${f.y(y)}`).join(" ") }));
  }
  for (const t of tested) {
    const [cx, cy] = [f.x(t.latency_ms), f.y(t.test_accuracy)];
    const what = t.baseline ? `zoo baseline ${t.baseline}, trained with the final recipe` : `final model ${t.trial_id}${t.source_index !== null ? " (from #" + t.source_index + ")" : ""}`;
    const d = svg("path", { class: "point tested" + (t.on_front ? " front" : "") + (t.baseline ? " baseline" : ""), d: `M${cx},${cy - 7}L${cx + 7},${cy}L${cx},${cy + 7}L${cx - 7},${cy}Z`, tabindex: 0 },
      svg("title", {}, `${what}: ${fmt.pct(t.test_accuracy)} test, ${fmt.ms(t.latency_ms)}${t.baseline ? "" : t.on_front ? ", on the tested front" : ", dominated"}`));
    d.addEventListener("click", go(t.trial_id));
    d.addEventListener("keydown", e => { if (e.key === "Enter") go(t.trial_id)(); });
    f.root.append(d);
    if (t.baseline) f.root.append(svg("text", { class: "baseline-label", x: cx + 9, y: cy + 4 }, `${t.baseline} (tested)`));
  }
  for (const r of rej) {
    const c = svg("rect", { class: "point rejected", x: f.x(r.latency_ms) - 3.5, y: f.y(ymin) - 3.5, width: 7, height: 7 },
      svg("title", {}, `trial ${r.trial_id} (#${r.index}): rejected at ${fmt.ms(r.latency_ms)}`));
    c.addEventListener("click", go(r.trial_id));
    f.root.append(c);
  }
  const legend = el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:#7ea6d8" }), "trial"),
    el("span", {}, el("i", { style: "background:#f0a830" }), "validated front"),
    tested.length ? el("span", {}, el("i", { style: "background:#c2185b;transform:rotate(45deg);border-radius:0" }), "final model, tested (line: tested front)") : null,
    pts.some(p => p.baseline) ? el("span", {}, el("i", { style: "background:#fff;border:2px solid #2e7d32" }), "zoo baseline") : null,
    pts.some(p => p.state === "stopped") ? el("span", {}, el("i", { style: "background:#fff;border:2px solid #7ea6d8" }), "stopped early (larger: trained to a higher rung)") : null,
    rej.length ? el("span", {}, el("i", { style: "background:#8e24aa;border-radius:2px" }), "rejected (over the latency limit)") : null,
    target ? el("span", {}, el("i", { style: "background:#c62828;border-radius:0;height:2px" }), "latency target") : null);
  return el("figure", { style: "margin:0" }, f.root, legend);
}

function bestSoFar(pareto) {
  const points = pareto.points.filter(p => p.index >= 0), best = pareto.best_so_far;
  if (!best.length) return el("p", { class: "muted", text: "No trained trials yet." });
  const rewards = points.map(p => p.reward).concat(best.map(b => b.reward));
  const xmax = Math.max(1, ...points.map(p => p.index), ...best.map(b => b.index));
  const f = frame({ xmin: 0, xmax, ymin: Math.min(...rewards) * 0.95, ymax: Math.max(...rewards) * 1.02,
    xlabel: "trial number", ylabel: "reward", xfmt: v => Number.isInteger(v) ? String(v) : "", yfmt: v => v.toFixed(2) });
  for (const p of points) f.root.append(svg("circle", { cx: f.x(p.index), cy: f.y(p.reward), r: 2, fill: "#b9c7d8" }));
  const steps = best.flatMap((b, k) => k ? [[b.index, best[k - 1].reward], [b.index, b.reward]] : [[b.index, b.reward]]);
  steps.push([xmax, best[best.length - 1].reward]);
  f.root.append(svg("polyline", { class: "series", stroke: "#1f4e79", points: steps.map(([i, r]) => `${f.x(i)},${f.y(r)}`).join(" ") }));
  for (const b of best) f.root.append(svg("circle", { cx: f.x(b.index), cy: f.y(b.reward), r: 3, fill: "#1f4e79" }, svg("title", {}, `trial #${b.index}: reward ${fmt.r(b.reward)}`)));
  return el("figure", { style: "margin:0" }, f.root, el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:#1f4e79" }), "best reward so far"), el("span", {}, el("i", { style: "background:#b9c7d8" }), "each trial")));
}

function hypervolumeChart(h) {
  const steps = h.over_compute || [];
  if (!steps.length) return el("p", { class: "muted", text: "No rung results yet." });
  const ys = steps.map(s => s.hypervolume).concat(h.tested !== null && h.tested !== undefined ? [h.tested] : []);
  const xmax = Math.max(1, steps[steps.length - 1].epochs);
  const f = frame({ xmin: 0, xmax, ymin: 0, ymax: Math.max(0.05, ...ys) * 1.1, xlabel: "epochs trained", ylabel: "hypervolume",
    xfmt: v => Number.isInteger(v) ? fmt.num(v) : "", yfmt: v => v.toFixed(2) });
  const pts = steps.flatMap((s, k) => k ? [[s.epochs, steps[k - 1].hypervolume], [s.epochs, s.hypervolume]] : [[s.epochs, s.hypervolume]]);
  f.root.append(svg("polyline", { class: "series", stroke: "#1f4e79", points: pts.map(([x, y]) => `${f.x(x)},${f.y(y)}`).join(" ") }));
  if (h.tested !== null && h.tested !== undefined) {
    f.root.append(svg("line", { class: "target", stroke: "#c2185b", x1: f.m.l, x2: f.m.l + f.W, y1: f.y(h.tested), y2: f.y(h.tested), style: "stroke:#c2185b" }),
      svg("text", { x: f.m.l + 4, y: f.y(h.tested) - 4 }, `tested front ${h.tested.toFixed(3)}`));
  }
  const ref = h.metrics.map((m, i) => m === "accuracy" ? `${(h.reference[i] * 100).toFixed(1)}% accuracy` : m === "latency" ? `${h.reference[i]} ms` : `${fmt.short(h.reference[i])} ${m}`).join(", ");
  return el("figure", { style: "margin:0" }, f.root, el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:#1f4e79" }), "validated front"),
    h.tested !== null && h.tested !== undefined ? el("span", {}, el("i", { style: "background:#c2185b" }), "tested front") : null,
    el("span", { class: "muted", text: `share of the box from the ideal to the reference (${ref})` })));
}

function curves(epochs) {
  if (!epochs.length) return el("p", { class: "muted", text: "No epochs recorded yet." });
  const n = epochs.length;
  const series = [
    { key: "train_accuracy", color: "#1f4e79", name: "train accuracy" },
    { key: "val_accuracy", color: "#f0a830", name: "val accuracy" },
  ];
  const f = frame({ width: 420, height: 240, xmin: 1, xmax: Math.max(2, n), ymin: 0, ymax: 1, xlabel: "epoch", ylabel: "accuracy", yfmt: v => Math.round(v * 100) + "%" });
  for (const s of series) {
    const pts = epochs.filter(e => e[s.key] !== null).map(e => `${f.x(e.epoch)},${f.y(e[s.key])}`);
    f.root.append(svg("polyline", { class: "series", stroke: s.color, points: pts.join(" ") }));
    for (const e of epochs) if (e[s.key] !== null) f.root.append(svg("circle", { cx: f.x(e.epoch), cy: f.y(e[s.key]), r: 3, fill: s.color }, svg("title", {}, `${s.name} ${fmt.pct(e[s.key])}`)));
  }
  const losses = epochs.map(e => e.train_loss);
  const g = frame({ width: 420, height: 240, xmin: 1, xmax: Math.max(2, n), ymin: 0, ymax: Math.max(...losses) * 1.1, xlabel: "epoch", ylabel: "train loss", yfmt: v => v.toFixed(2) });
  g.root.append(svg("polyline", { class: "series", stroke: "#c62828", points: epochs.map(e => `${g.x(e.epoch)},${g.y(e.train_loss)}`).join(" ") }));
  for (const e of epochs) g.root.append(svg("circle", { cx: g.x(e.epoch), cy: g.y(e.train_loss), r: 3, fill: "#c62828" }, svg("title", {}, `loss ${e.train_loss.toFixed(4)}`)));
  return el("div", { class: "grid" },
    el("figure", { style: "margin:0" }, f.root, el("div", { class: "legend" }, series.map(s => el("span", {}, el("i", { style: `background:${s.color}` }), s.name)))),
    el("figure", { style: "margin:0" }, g.root, el("div", { class: "legend" }, el("span", {}, el("i", { style: "background:#c62828" }), "train loss"))));
}

// The architecture as boxes top to bottom; residual bodies with their skip
// connection, inception branches side by side, SE gates marked. Each kind's
// colour comes from the server (`GET /layer-kinds`), read once per page load.
let kindColours = null;
async function layerKindColours() {
  if (!kindColours) {
    const { kinds } = await api("/layer-kinds");
    kindColours = new Map(kinds.map(k => [k.kind, k.colour]));
  }
  return kindColours;
}
// Labels come from the server (`layers[].label`, by path); the walk below
// only follows the nesting of residual bodies and branches.
function layoutLayers(layers, prefix, labels, colours, x, y, width, parts) {
  let cy = y;
  layers.forEach((layer, i) => {
    const path = `${prefix}[${i}]`;
    if (layer.kind === "residual") {
      const top = cy;
      cy = layoutLayers(layer.body, path + ".body", labels, colours, x + 18, cy, width - 36, parts);
      parts.push(svg("path", { class: "skip", d: `M${x + width - 8},${top + 6} C${x + width + 10},${top + 6} ${x + width + 10},${cy - 10} ${x + width - 8},${cy - 10}` },
        svg("title", {}, `shortcut: ${layer.shortcut}`)));
      parts.push(svg("text", { x: x + width + 12, y: (top + cy) / 2, "text-anchor": "start" }, layer.shortcut === "identity" ? "+ identity" : "+ projection"));
    } else if (layer.kind === "branches") {
      const n = layer.branches.length, gap = 6, w = (width - gap * (n - 1)) / n;
      let bottom = cy;
      layer.branches.forEach((branch, j) => { bottom = Math.max(bottom, layoutLayers(branch, `${path}.branches[${j}]`, labels, colours, x + j * (w + gap), cy, w, parts)); });
      parts.push(svg("text", { x: x + width / 2, y: bottom + 8, "text-anchor": "middle" }, "concat"));
      cy = bottom + 14;
    } else {
      parts.push(svg("rect", { x, y: cy, width, height: 24, fill: colours.get(layer.kind) || "#eceff3" }),
        svg("text", { x: x + width / 2, y: cy + 16, "text-anchor": "middle" }, labels.get(path) || layer.kind));
      cy += 30;
    }
  });
  return cy;
}
function diagram(arch, layers, colours) {
  const parts = [];
  const width = 300;
  const labels = new Map(layers.map(l => [l.path, l.label]));
  parts.push(svg("text", { x: width / 2 + 20, y: 14, "text-anchor": "middle" }, `input ${arch.input.join("×")}`));
  const bottom = layoutLayers(arch.layers, "layers", labels, colours, 20, 24, width, parts);
  parts.push(svg("text", { x: width / 2 + 20, y: bottom + 12, "text-anchor": "middle" }, `${arch.classes} classes`));
  return el("figure", { class: "diagram", style: "margin:0" }, svg("svg", { viewBox: `0 0 ${width + 110} ${bottom + 22}`, width: "100%", style: `max-width:${width + 110}px`, role: "img", "aria-label": "architecture diagram" }, parts));
}
function layerTable(layers) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "layer" }), el("th", { text: "kind" }), el("th", { text: "output" }), el("th", { class: "num", text: "params" }), el("th", { class: "num", text: "MACs" }))),
    el("tbody", {}, layers.map(l => el("tr", {}, el("td", { style: `padding-left:${0.6 + l.depth * 1.2}rem`, text: l.path }), el("td", { text: l.kind }), el("td", { text: l.output }),
      el("td", { class: "num", text: fmt.num(l.params) }), el("td", { class: "num", text: fmt.num(l.macs) }))))));
}

// ---------- pages ----------
async function searchesPage() {
  const params = new URLSearchParams(location.search);
  const status = params.get("status") || "";
  document.title = "Searches · nas";
  const body = el("tbody");
  const filter = el("select", { id: "status-filter", "aria-label": "filter by status", onchange: e => {
    const q = e.target.value ? "?status=" + e.target.value : ""; history.replaceState(null, "", "/" + q); render(); } },
    ["", "running", "finished", "cancelled"].map(s => el("option", { value: s, selected: s === status, text: s || "all" })));
  show(
    el("div", { class: "row" }, el("h1", { text: "Searches" }), el("span", { class: "spacer" }), filter, el("a", { class: "button", href: "/searches/new", text: "New search" })),
    el("div", { class: "scroll" }, el("table", { id: "searches" },
      el("thead", {}, el("tr", {}, ["id", "name", "status", "progress", "best acc", "best reward", "latency target", "dataset", "strategy", "created"].map(h => el("th", { class: ["best acc", "best reward", "id"].includes(h) ? "num" : null, text: h })))),
      body)));
  async function render() {
    const st = new URLSearchParams(location.search).get("status");
    const list = await api("/searches?limit=100" + (st ? "&status=" + st : ""));
    patch(body, list.searches.length ? list.searches.map(s => {
      const lat = s.spec.objective.latency;
      const elapsed = (s.finished_at_ms || Date.now()) - s.created_at_ms;
      const maxs = s.spec.budget.max_seconds;
      return el("tr", {},
        el("td", { class: "num", text: s.id }),
        el("td", {}, el("a", { href: "/searches/" + s.id, text: s.name })),
        el("td", {}, badge(s.status)),
        el("td", {}, el("div", { class: "row", style: "flex-wrap:nowrap" }, bar(s.progress.fraction, `${s.name} progress`),
          el("span", { class: "muted", text: `${s.progress.trials_ended}/${s.progress.max_trials}` + (maxs ? ` · ${Math.round(elapsed / 1000)}/${maxs}s` : "") }))),
        el("td", { class: "num", text: fmt.pct(s.best_accuracy) }),
        el("td", { class: "num", text: fmt.r(s.best_reward) }),
        el("td", { text: lat ? `${lat.target_ms} ms (${lat.mode})` : "–" }),
        el("td", { text: s.spec.dataset }),
        el("td", { text: s.spec.strategy.kind }),
        el("td", { class: "muted", text: fmt.when(s.created_at_ms) }));
    }) : el("tr", {}, el("td", { colspan: 10, class: "muted", text: "No searches yet: start one with “New search”." })));
  }
  await render();
  live("", render);
}

// The epochs at which a spec's rungs end (one rung without a scheduler).
function rungs(spec) {
  const sc = spec.scheduler || { kind: "none" };
  if (sc.kind !== "asha") return [spec.budget.epochs];
  const out = [];
  for (let r = sc.min_epochs; r < sc.max_epochs; r *= sc.eta) out.push(r);
  out.push(sc.max_epochs);
  return out;
}
function rungCount(spec) { return rungs(spec).length; }
function schedulerText(spec) {
  const sc = spec.scheduler || { kind: "none" };
  return sc.kind === "asha" ? `ASHA: rungs at ${rungs(spec).join(", ")} epochs, the top 1/${sc.eta} of each rung go on` : "none (every trial trains the same epochs)";
}

function objectiveText(o) {
  const lat = o.latency;
  if (o.kind === "pareto") return `Pareto front of ${o.metrics.join(", ")}` + (lat && lat.max_ms ? `, reject over ${lat.max_ms} ms` : "");
  return lat ? `accuracy × (latency / ${lat.target_ms} ms)^w, ${lat.mode || "soft"}` + (lat.max_ms ? `, reject over ${lat.max_ms} ms` : "") : "accuracy";
}

const SORTS = [["rank", null], ["front", "rank"], ["trial", null], ["blocks", null], ["val acc", "accuracy"], ["latency p50", "latency"], ["reward", "reward"], ["params", "params"], ["MACs", "macs"], ["epochs", null], ["rung", null], ["state", null]];
async function searchPage(id) {
  let detail = await api("/searches/" + id);
  document.title = `${detail.name} · nas`;
  const state = { sort: "reward", cursors: [null], page: 0 };
  const header = el("div");
  const charts = el("div", { class: "grid" });
  const running = el("div");
  const board = el("tbody");
  const pager = el("div", { class: "row" });
  const headRow = el("tr", {}, SORTS.map(([name, key]) => el("th", { class: ["state", "trial", "blocks"].includes(name) ? null : "num" },
    key ? el("button", { type: "button", "data-sort": key, "aria-pressed": String(key === state.sort), onclick: () => { state.sort = key; state.cursors = [null]; state.page = 0; for (const b of headRow.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.sort === key)); loadBoard(); } }, name) : name)));
  const finals = el("div", { id: "final-models" });
  show(header, finals,
    el("h2", { text: "Accuracy vs latency" }), charts,
    el("h2", { text: "Running trials" }), running,
    el("h2", { text: "Leaderboard" }),
    el("div", { class: "scroll" }, el("table", { id: "leaderboard" }, el("thead", {}, headRow), board)), pager);

  function renderHeader() {
    const s = detail, lat = s.spec.objective.latency;
    const cancel = el("button", { class: "danger", id: "cancel", type: "button", disabled: s.status !== "running", onclick: async () => {
      if (!confirm(`Cancel search ${s.id} (${s.name})? Pending trials are dropped and running ones stop.`)) return;
      try { detail = await api(`/searches/${s.id}/cancel`, { method: "POST" }).then(() => api("/searches/" + id)); renderHeader(); } catch (e) { alert(e.message); }
    } }, "Cancel search");
    const best = s.best_trial;
    patch(header,
      el("div", { class: "row" }, el("h1", { text: `${s.name}` }), badge(s.status), s.status === "running" ? el("span", { class: "live", text: "live" }) : null, el("span", { class: "spacer" }),
        el("a", { class: "button secondary", href: `${API}/searches/${s.id}/leaderboard?format=csv&limit=1000&sort=${state.sort}`, download: `search-${s.id}.csv` }, "Export CSV"),
        best ? el("a", { class: "button secondary", id: "download-best-onnx", href: `${API}/trials/${best.trial_id}/model.onnx`, title: "The best trial's trained model as ONNX, for onnxruntime and other runtimes" }, "Download best model (ONNX)") : null,
        best ? el("a", { class: "button secondary", href: `${API}/trials/${best.trial_id}/weights`, title: "Weights for nas train --arch" }, "safetensors") : null, cancel),
      ...(s.error ? [el("p", { class: "error", role: "alert", id: "search-error", text: `This search failed: ${s.error}` })] : []),
      ...(s.waiting_for ? [el("p", { class: "notice", role: "status", id: "search-waiting", text: `Queued, ${s.waiting_for}: no live worker offers ${s.waiting_for.replace("waiting for a worker with ", "")}.` })] : []),
      el("div", { class: "card" }, el("dl", { class: "facts" },
        el("dt", { text: "progress" }), el("dd", {}, el("div", { class: "row" }, bar(s.progress.fraction, "search progress"), `${s.progress.trials_ended} of ${s.progress.max_trials} trials ended` + (s.spec.budget.max_epochs_total ? `, ${fmt.num(s.epochs_committed)} of ${fmt.num(s.spec.budget.max_epochs_total)} epochs queued` : ""))),
        el("dt", { text: "trials" }), el("dd", { text: Object.entries(s.trial_counts).map(([k, v]) => `${v} ${k}`).join(", ") || "–" }),
        el("dt", { text: "best" }), el("dd", {}, best ? el("a", { href: "/trials/" + best.trial_id }, `trial ${best.trial_id}: ${fmt.pct(best.accuracy)} at ${fmt.ms(best.latency_ms)}, reward ${fmt.r(best.reward)}`) : "–"),
        el("dt", { text: "dataset" }), el("dd", { text: s.spec.dataset }),
        el("dt", { text: "strategy" }), el("dd", { text: s.spec.strategy.kind + (s.spec.strategy.population ? ` (population ${s.spec.strategy.population}, sample ${s.spec.strategy.sample})` : "") }),
        el("dt", { text: "objective" }), el("dd", { id: "objective", text: objectiveText(s.spec.objective) }),
        ...(s.hypervolume ? [el("dt", { text: "hypervolume" }), el("dd", { id: "hypervolume", text: `validated ${s.hypervolume.validated.toFixed(4)}` + (s.hypervolume.tested !== null && s.hypervolume.tested !== undefined ? `, tested ${s.hypervolume.tested.toFixed(4)}` : "") })] : []),
        el("dt", { text: "budget" }), el("dd", { text: `${s.spec.budget.max_trials} trials` + (s.spec.scheduler && s.spec.scheduler.kind === "asha" ? "" : ` × ${s.spec.budget.epochs} epoch(s)`) + `, ${s.spec.budget.parallelism} at once` + (s.spec.budget.max_epochs_total ? `, ${fmt.num(s.spec.budget.max_epochs_total)} epochs in all` : "") + (s.spec.budget.max_train_samples ? `, ${fmt.num(s.spec.budget.max_train_samples)} images` : "") }),
        el("dt", { text: "scheduler" }), el("dd", { id: "scheduler", text: schedulerText(s.spec) }),
        el("dt", { text: "created" }), el("dd", { text: fmt.when(s.created_at_ms) }))));
  }
  let onTestedFront = new Set();
  function renderFinals() {
    const s = detail, models = s.final_models || [];
    if (!models.length) {
      const can = s.status === "finished";
      patch(finals, ...(can ? [el("div", { class: "card row" },
        el("span", { text: "Train the best architectures from scratch on training + validation data and test them once on the held-out test set." }), el("span", { class: "spacer" }),
        el("button", { id: "train-final", type: "button", onclick: async () => {
          const button = finals.querySelector("#train-final");
          button.disabled = true;
          try { await api(`/searches/${s.id}/final`, { method: "POST", body: JSON.stringify(s.spec.final || {}) }); await refresh(); } catch (e) { button.disabled = false; alert(e.message); }
        } }, "Train final models"))] : []));
      return;
    }
    patch(finals, el("h2", { text: "Final models" }),
      el("p", { class: "muted", text: "Trained from scratch on training + validation data with the full recipe, tested once on the held-out test set; the search never saw the test set. Fastest first: for a latency budget, take the last model on the tested front within it." }),
      el("div", { class: "scroll" }, el("table", { id: "final-table" }, el("thead", {}, el("tr", {}, ["model", "from trial", "test acc", "latency p50", "params", "MACs", "epochs", "tested front", "state", ""].map((h, i) => el("th", { class: i >= 2 && i <= 6 ? "num" : null, text: h })))),
        el("tbody", {}, models.map(m => { const r = m.result || {}; const p = m.progress || {}; return el("tr", {},
          el("td", {}, el("a", { href: "/trials/" + m.id, text: `trial ${m.id}` })),
          el("td", {}, m.baseline ? el("span", { class: "badge baseline", title: "reference-zoo baseline, trained with the same final recipe", text: "zoo: " + m.baseline }) : m.source_index !== null && m.source_index !== undefined ? `#${m.source_index}` : "–"),
          el("td", { class: "num", text: fmt.pct(m.test_accuracy) }), el("td", { class: "num", text: r.latency_ms ? fmt.ms(r.latency_ms.p50) : "–" }),
          el("td", { class: "num", text: fmt.short(r.params) }), el("td", { class: "num", text: fmt.short(r.macs) }),
          el("td", { class: "num", text: r.epochs || (p.epochs ? `${p.epoch}/${p.epochs}` : "–") }),
          el("td", { class: "front-mark", text: m.baseline ? "reference" : onTestedFront.has(m.id) ? "on the front" : (m.state === "succeeded" ? "dominated" : "–") }), el("td", {}, badge(m.state)),
          el("td", {}, m.state === "succeeded" ? el("span", { class: "row" }, el("a", { class: "button secondary", href: `${API}/trials/${m.id}/model.onnx` }, "ONNX"), el("a", { class: "button secondary", href: `${API}/trials/${m.id}/weights` }, "Weights")) : null)); })))));
  }
  async function loadCharts() {
    const pareto = await api(`/searches/${id}/pareto?max_points=2000`);
    const lat = detail.spec.objective.latency;
    const front = new Set((pareto.tested || []).filter(t => t.on_front).map(t => t.trial_id));
    if ([...front].join() !== [...onTestedFront].join()) { onTestedFront = front; renderFinals(); }
    const pareto_search = detail.spec.objective.kind === "pareto";
    patch(charts, ...[el("div", { class: "card", id: "scatter" }, scatter(pareto, lat && lat.target_ms)),
      pareto.hypervolume && pareto_search ? null : el("div", { class: "card", id: "best-so-far" }, el("strong", { text: "Best reward by trial" }), bestSoFar(pareto)),
      pareto.hypervolume ? el("div", { class: "card", id: "hypervolume-chart" }, el("strong", { text: "Hypervolume over compute" }), hypervolumeChart(pareto.hypervolume)) : null,
      pareto.total_points > pareto.points.length ? el("p", { class: "muted", style: "grid-column:1/-1;margin:0", text: `Charts show the Pareto front and ${fmt.num(pareto.points.length)} of ${fmt.num(pareto.total_points)} trained trials.` }) : null].filter(Boolean));
  }
  async function loadRunning() {
    const list = await api(`/searches/${id}/trials?state=running`);
    patch(running, list.trials.length ? el("div", { class: "scroll" }, el("table", { id: "running" }, el("thead", {}, el("tr", {}, el("th", { text: "trial" }), el("th", { text: "worker" }), el("th", { text: "epoch" }), el("th", { class: "num", text: "loss" }), el("th", { class: "num", text: "val acc" }))),
      el("tbody", {}, list.trials.map(t => { const p = t.progress || {}; return el("tr", {}, el("td", {}, el("a", { href: "/trials/" + t.id, text: `${t.id} (#${t.index})` })), el("td", { text: t.worker_id || "–" }),
        el("td", {}, el("div", { class: "row", style: "flex-wrap:nowrap" }, bar(p.epochs ? p.epoch / p.epochs : 0, `trial ${t.id} progress`), p.epochs ? `${p.epoch}/${p.epochs}` : "starting")),
        el("td", { class: "num", text: p.train_loss !== undefined ? p.train_loss.toFixed(4) : "–" }), el("td", { class: "num", text: fmt.pct(p.val_accuracy) })); }))))
      : el("p", { class: "muted", text: detail.status === "running" ? "None right now (waiting for a worker?)." : "None." }));
  }
  async function loadBoard() {
    const cursor = state.cursors[state.page];
    const page = await api(`/searches/${id}/leaderboard?limit=25&sort=${state.sort}` + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    state.cursors[state.page + 1] = page.next_cursor;
    patch(board, page.entries.length ? page.entries.map(e => el("tr", {},
      el("td", { class: "num", text: e.rank }), el("td", { class: "num", text: e.front !== undefined && e.front !== null ? e.front + 1 : "–" }), el("td", {}, el("a", { href: "/trials/" + e.trial_id, text: e.baseline ? `${e.trial_id}` : `${e.trial_id} (#${e.index})` }),
        e.baseline ? [" ", el("span", { class: "badge baseline", title: "reference-zoo baseline", text: "zoo: " + e.baseline })] : null),
      el("td", { class: "blocks", title: e.blocks, text: e.blocks }),
      el("td", { class: "num", text: fmt.pct(e.accuracy) }), el("td", { class: "num", text: fmt.ms(e.latency_ms) }), el("td", { class: "num", text: fmt.r(e.reward) }),
      el("td", { class: "num", text: fmt.short(e.params) }), el("td", { class: "num", text: fmt.short(e.macs) }), el("td", { class: "num", text: e.epochs }),
      el("td", { class: "num", text: `${e.rung + 1}/${rungCount(detail.spec)}` }), el("td", {}, badge(e.state === "stopped" ? "stopped early" : e.state))))
      : el("tr", {}, el("td", { colspan: 12, class: "muted", text: "No trained trials yet." })));
    patch(pager, el("button", { class: "secondary", type: "button", disabled: state.page === 0, onclick: () => { state.page--; loadBoard(); } }, "← Previous"),
      el("span", { class: "muted", text: `${page.total ? (page.entries[0] ? page.entries[0].rank : 0) : 0}–${page.entries.length ? page.entries[page.entries.length - 1].rank : 0} of ${page.total}` }),
      el("button", { class: "secondary", type: "button", disabled: !page.next_cursor, onclick: () => { state.page++; loadBoard(); } }, "Next →"));
  }
  async function refresh() {
    detail = await api("/searches/" + id);
    renderHeader();
    renderFinals();
    await Promise.all([loadCharts(), loadRunning(), loadBoard()]);
  }
  renderHeader();
  renderFinals();
  await Promise.all([loadCharts(), loadRunning(), loadBoard()]);
  live("?search=" + id, refresh);
}

/** A latency figure with what the protocol says of it: its interval, runs and stability. */
function latencyText(l) {
  if (l.predicted) return `${fmt.ms(l.p50)} predicted by this device's latency predictor (refused without being built or measured)`;
  let text = `p50 ${fmt.ms(l.p50)}, p90 ${fmt.ms(l.p90)}`;
  if (l.ci_low != null && l.ci_high != null) text += ` · 95% interval of the median ${fmt.ms(l.ci_low)}–${fmt.ms(l.ci_high)}`;
  if (l.runs) text += ` · ${fmt.num(l.runs)} runs`;
  if (l.unstable) text += " · unstable (interval wider than ±5% after every attempt)";
  if (l.ratio != null && l.basis_p50 != null) text += ` · ${l.ratio.toFixed(3)}× the device reference (${fmt.ms(l.basis_p50)})`;
  if (l.raw_p50 != null && l.ratio != null) text += ` · raw p50 ${fmt.ms(l.raw_p50)}`;
  if (l.runtime) text += ` · in ${l.runtime}`;
  if (l.reference_p50 != null) text += ` · ${fmt.ms(l.reference_p50)} on the reference device`;
  return text;
}

async function trialPage(id) {
  const [t, colours] = await Promise.all([api("/trials/" + id), layerKindColours()]);
  document.title = `Trial ${id} · nas`;
  const r = t.result || {};
  const facts = [
    ["search", el("a", { href: "/searches/" + t.search_id, text: "search " + t.search_id })],
    ["state", badge(t.state)],
    ["validation accuracy", fmt.pct(r.val_accuracy)],
    ...(t.phase === "final" ? [["test accuracy", fmt.pct(t.test_accuracy)], ["final model of", t.source_index !== null ? `trial #${t.source_index} (trained from scratch on training + validation data)` : "–"]] : []),
    ["epochs", t.phase === "final" ? String(r.epochs || "–") : `${t.epochs_done}` + (t.rung !== null && t.rung !== undefined ? ` (rung ${t.rung + 1})` : "")],
    ...(r.reason ? [["note", r.reason]] : []),
    ...(t.checkpoint_bytes ? [["checkpoint", `${fmt.num(t.checkpoint_bytes)} bytes (kept until the trial ends)`]] : []),
    ["reward", fmt.r(t.reward)],
    ["latency", r.latency_ms ? latencyText(r.latency_ms) : "–"],
    ["device", r.device || "–"],
    ["params / MACs", `${fmt.num(r.params)} / ${fmt.num(r.macs)}`],
    ["training", r.train_seconds ? `${r.train_seconds.toFixed(1)} s, ${fmt.num(Math.round(r.images_per_second))} images/s` + (r.paused_seconds ? ` (paused ${r.paused_seconds.toFixed(1)} s while other agents measured latency)` : "") : "–"],
    ["parent", t.index < 0 ? "– (reference-zoo baseline)" : t.parent_trial_id ? el("span", {}, el("a", { href: "/trials/" + t.parent_trial_id, text: `trial ${t.parent_trial_id} (#${t.parent_index})` }), t.mutation ? ` · changed: ${t.mutation}` : "") : "– (sampled)"],
    ["attempts", String(t.attempt)],
  ];
  show(
    el("div", { class: "row" }, el("h1", { text: t.index < 0 ? `Trial ${t.id}: zoo baseline ${t.baseline}` : `Trial ${t.id} (#${t.index})` }), badge(t.state), el("span", { class: "spacer" }),
      el("a", { class: "button secondary", href: `${API}/trials/${id}/architecture`, download: `trial-${id}.json` }, "Architecture JSON"),
      t.state === "succeeded" ? el("a", { class: "button secondary", id: "download-onnx", href: `${API}/trials/${id}/model.onnx` }, "ONNX model") : null,
      ["succeeded", "stopped"].includes(t.state) ? el("a", { class: "button secondary", href: `${API}/trials/${id}/weights` }, "Weights") : null),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]))),
      el("div", { class: "card", id: "diagram" }, el("strong", { text: "Architecture" }), diagram(t.architecture, t.layers, colours))),
    el("h2", { text: "Learning curves" }), el("div", { class: "card", id: "curves" }, curves(t.epochs)),
    t.errors.length ? el("div", {}, el("h2", { text: "Errors" }), el("ul", {}, t.errors.map(e => el("li", {}, `attempt ${e.attempt}: ${e.error}`)))) : null,
    el("h2", { text: "Layers" }), layerTable(t.layers));
}

async function zooPage() {
  document.title = "Zoo · nas";
  const zoo = await api("/zoo");
  const detail = el("div");
  show(el("h1", { text: "Reference zoo" }),
    el("p", { class: "muted", text: "The classic architectures in the search space's own format, at their published input size." }),
    el("div", { class: "scroll" }, el("table", { id: "zoo" },
      el("thead", {}, el("tr", {}, ["name", "paper", "input", "classes", "params", "MACs", ""].map(h => el("th", { class: ["params", "MACs", "classes"].includes(h) ? "num" : null, text: h })))),
      el("tbody", {}, zoo.zoo.map(z => el("tr", {}, el("td", { text: z.name }), el("td", { text: z.title }), el("td", { text: z.input.join("×") }), el("td", { class: "num", text: z.classes }),
        el("td", { class: "num", text: fmt.short(z.params) }), el("td", { class: "num", text: fmt.short(z.macs) }),
        el("td", {}, el("button", { class: "secondary", type: "button", onclick: () => showZoo(z.name) }, "Diagram"))))))),
    detail);
  async function showZoo(name) {
    const z = await api("/zoo/" + name);
    detail.replaceChildren(el("h2", { text: `${z.name}: ${z.title}` }), el("div", { class: "grid" }, el("div", { class: "card" }, diagram(z.architecture, z.layers, await layerKindColours())), layerTable(z.layers.filter(l => l.depth === 0))));
    detail.scrollIntoView();
  }
}

// Sends a file as the body of POST /datasets with upload progress (fetch
// cannot report it); resolves to the parsed answer, rejects with ApiError.
function uploadFile(query, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + "/datasets?" + query);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    if (token()) xhr.setRequestHeader("authorization", "Bearer " + token());
    xhr.upload.addEventListener("progress", e => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 401) document.getElementById("token-form").hidden = false;
      if (xhr.status >= 200 && xhr.status < 300) resolve(body); else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error: { message: "the upload was cut off (network error)" } })));
    xhr.send(file);
  });
}
const shapeText = input => `${input[1]}×${input[2]}×${input[0]}`;
const mib = bytes => bytes < 1048576 ? (bytes / 1024).toFixed(1) + " KiB" : (bytes / 1048576).toFixed(1) + " MiB";
const sum = xs => xs.reduce((a, b) => a + b, 0);

async function datasetsPage() {
  document.title = "Datasets · nas";
  const body = el("tbody");
  const detail = el("div", { id: "dataset-detail" });
  const inp = (name, attrs) => el("input", Object.assign({ name, id: "u-" + name }, attrs));
  const field = (name, labelText, input, hint) => el("label", { class: "field", "data-field": name }, labelText, input, hint ? el("span", { class: "muted", text: hint }) : null);
  const progress = el("div", { class: "bar", role: "progressbar", "aria-label": "upload progress", "aria-valuemin": 0, "aria-valuemax": 100, hidden: true }, el("span", { style: "width:0%" }));
  const status = el("p", { role: "status", id: "upload-status" });
  const form = el("form", { class: "spec", id: "upload-form", novalidate: true },
    el("fieldset", {}, el("legend", { text: "Upload a dataset" }),
      field("file", "File", inp("file", { type: "file", required: true, accept: ".zip,.tar,.tgz,.gz,.npz,.csv" }),
        "a .zip, .tar or .tar.gz of class/*.png|jpg (or train/ and test/ of those), a Keras .npz, a Kaggle-style .csv, or the four IDX files in an archive"),
      field("name", "Name", inp("name", { required: true, placeholder: "my-images", pattern: "[A-Za-z0-9][A-Za-z0-9._-]{0,63}" }), "what specs call it: letters, digits, - _ ."),
      el("div", { class: "row" }, el("button", { type: "submit", id: "upload" }, "Upload"), progress)),
    el("fieldset", {}, el("legend", { text: "Options" }),
      field("resize", "Resize to (HxW, optional)", inp("resize", { placeholder: "32x32" }), "otherwise every image must have one size"),
      field("channels", "Channels", el("select", { name: "channels", id: "u-channels" }, [["", "as the images are"], ["1", "1 (grey)"], ["3", "3 (RGB)"]].map(([v, t]) => el("option", { value: v, text: t })))),
      field("label_column", "CSV label column", inp("label_column", { value: "label" })),
      field("test_fraction", "Test fraction (data without a test split)", inp("test_fraction", { type: "number", min: 0.01, max: 0.89, step: "any", value: 0.15 }), "held out, stratified; only final models are tested on it")));
  form.elements.file.addEventListener("change", () => {
    const f = form.elements.file.files[0];
    if (f && !form.elements.name.value) form.elements.name.value = f.name.split(".")[0].replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^[-_]+|[-_]+$/g, "").slice(0, 64) || "dataset";
  });
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) { status.className = "error"; status.textContent = "Choose a file to upload."; return; }
    const q = new URLSearchParams({ name: form.elements.name.value.trim() });
    for (const k of ["resize", "channels", "label_column", "test_fraction"]) if (form.elements[k].value.trim() !== "") q.set(k, form.elements[k].value.trim());
    form.elements.upload.disabled = true; progress.hidden = false; status.className = "muted"; status.textContent = "Uploading…";
    const setProgress = f => { progress.firstChild.style.width = (f * 100) + "%"; progress.setAttribute("aria-valuenow", Math.round(f * 100)); if (f >= 1) status.textContent = "Sent; the server is decoding and checking it…"; };
    try {
      const stored = await uploadFile(q.toString(), file, setProgress);
      status.className = "ok";
      status.textContent = `Stored ${stored.dataset.name}: ${sum(stored.dataset.summary.train_per_class).toLocaleString("en-US")} training and ${sum(stored.dataset.summary.test_per_class).toLocaleString("en-US")} test images` + (stored.new_content ? "." : " (the same content was stored already).");
      await render();
      showDataset(stored.dataset.name);
    } catch (err) {
      status.className = "error";
      status.textContent = err.message + (err.field ? ` (${err.field})` : "");
    } finally { form.elements.upload.disabled = false; progress.hidden = true; }
  });
  async function render() {
    const list = await api("/datasets");
    const rows = list.datasets.map(d => ({ name: d.name, source: "built-in", input: d.input, classes: d.classes, train: d.train_images, test: d.test_images, size: null, created: null }))
      .concat(list.uploaded.map(d => ({ name: d.name, source: "upload · " + d.summary.format, input: d.summary.input, classes: d.summary.class_names.length,
        train: sum(d.summary.train_per_class), test: sum(d.summary.test_per_class), size: d.bytes, created: d.created_at, id: d.id })));
    patch(body, rows.map(r => el("tr", {}, el("td", {}, el("button", { class: "linklike", type: "button", "data-dataset": r.name, onclick: () => showDataset(r.name) }, r.name)),
      el("td", { text: r.source }), el("td", { text: shapeText(r.input) }), el("td", { class: "num", text: r.classes }),
      el("td", { class: "num", text: fmt.num(r.train) }), el("td", { class: "num", text: fmt.num(r.test) }),
      el("td", { class: "num", text: r.size == null ? "–" : mib(r.size) }), el("td", { class: "muted", title: r.id || "", text: r.id ? r.id.slice(0, 12) : "–" }),
      el("td", { class: "muted", text: r.created ? fmt.when(r.created) : "–" }))));
    return list;
  }
  async function showDataset(name) {
    const list = await api("/datasets");
    const builtIn = list.datasets.find(d => d.name === name);
    let facts, names, train, test, sample = null, remove = null;
    if (builtIn) {
      names = builtIn.class_names; train = null; test = null;
      facts = [["source", "built-in: " + builtIn.description], ["input", shapeText(builtIn.input) + " (H×W×C)"], ["images", `${fmt.num(builtIn.train_images)} training, ${fmt.num(builtIn.test_images)} test`]];
    } else {
      const d = await api("/datasets/" + encodeURIComponent(name));
      const s = d.summary;
      names = s.class_names; train = s.train_per_class; test = s.test_per_class;
      facts = [["id", d.id], ["input", shapeText(s.input) + " (H×W×C)"], ["images", `${fmt.num(sum(train))} training, ${fmt.num(sum(test))} test`],
        ["test split", s.test_given ? "given by the data" : "carved at upload, stratified and seeded"], ["format", s.format + (s.skipped ? `, ${s.skipped} non-image files skipped` : "")],
        ["size", mib(d.bytes)], ["uploaded", fmt.when(d.created_at)]];
      sample = el("div", { class: "samples" },
        el("ol", { start: 0, "aria-hidden": "true" }, names.slice(0, 100).map(n => el("li", { text: n }))),
        el("img", { src: `${API}/datasets/${encodeURIComponent(name)}/samples.png`, alt: `Sample images of ${name}, one row per class: ${names.slice(0, 100).join(", ")}` }));
      remove = el("button", { class: "danger", type: "button", onclick: async () => {
        if (!confirm(`Remove the dataset ${name}? Searches that used it keep their results.`)) return;
        try { await api("/datasets/" + encodeURIComponent(name), { method: "DELETE" }); detail.replaceChildren(); await render(); }
        catch (err) { detail.querySelector(".error").textContent = err.message; }
      } }, "Remove");
    }
    detail.replaceChildren(el("h2", { text: name }),
      el("div", { class: "grid" },
        el("div", { class: "card" }, el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
          el("div", { class: "row", style: "margin-top:.8rem" }, el("a", { class: "button secondary", href: "/searches/new?dataset=" + encodeURIComponent(name) }, "Search on it"), remove),
          el("p", { class: "error", role: "alert" })),
        el("div", { class: "scroll" }, el("table", { id: "classes" }, el("thead", {}, el("tr", {}, ["label", "class", "train", "test"].map(h => el("th", { class: h === "class" ? null : "num", text: h })))),
          el("tbody", {}, names.map((n, i) => el("tr", {}, el("td", { class: "num", text: i }), el("td", { text: n }),
            el("td", { class: "num", text: train ? fmt.num(train[i]) : "–" }), el("td", { class: "num", text: test ? fmt.num(test[i]) : "–" }))))))),
      sample ? el("h3", { text: "Sample images (the first of each class)" }) : null, sample);
    detail.scrollIntoView();
  }
  show(el("h1", { text: "Datasets" }),
    el("p", { class: "muted", text: "The built-in datasets and your own. A search names one by name; it records the content it used, so uploading a name again never changes a search. Test splits are fixed at upload and only final models are tested on them." }),
    form, status,
    el("div", { class: "scroll" }, el("table", { id: "datasets" },
      el("thead", {}, el("tr", {}, ["name", "source", "input (H×W×C)", "classes", "train", "test", "size", "id", "uploaded"].map(h => el("th", { class: ["classes", "train", "test", "size"].includes(h) ? "num" : null, text: h })))), body)),
    detail);
  const list = await render();
  const asked = new URLSearchParams(location.search).get("show");
  if (asked && (list.datasets.some(d => d.name === asked) || list.uploaded.some(d => d.name === asked))) await showDataset(asked);
}

async function workersPage() {
  document.title = "Workers · nas";
  const body = el("tbody");
  show(el("h1", { text: "Workers" }), el("div", { class: "scroll" }, el("table", { id: "workers" },
    el("thead", {}, el("tr", {}, ["worker", "alive", "labels", "threads", "device", "runtimes", "latency reference", "ISA", "memory", "speed factor", "current trial", "last seen"].map(h => el("th", { text: h })))), body)));
  const referenceText = r => `${r.runtime} ${fmt.ms(r.p50_ms)}` + (Math.abs(r.drift - 1) >= 0.005 ? ` (drift ${r.drift >= 1 ? "+" : ""}${((r.drift - 1) * 100).toFixed(1)}%)` : "");
  async function render() {
    const list = await api("/workers");
    patch(body, list.workers.length ? list.workers.map(w => el("tr", {}, el("td", { text: w.id }), el("td", {}, el("span", { class: "badge " + (w.alive ? "succeeded" : "pending"), text: w.alive ? "alive" : "gone" })),
      el("td", { text: w.labels.join(", ") || "–" }), el("td", { text: w.threads }), el("td", { text: w.device }),
      el("td", { text: w.profile && w.profile.runtimes && w.profile.runtimes.length ? w.profile.runtimes.join(", ") : "nas" }),
      el("td", { class: "reference", title: w.profile && w.profile.references && w.profile.references.length ? `the established p50 of ${w.profile.references[0].network} per runtime (the basis of relative latency figures), and the drift of its last re-establishment` : "not calibrated: latency on the absolute basis", text: w.profile && w.profile.references && w.profile.references.length ? w.profile.references.map(referenceText).join("; ") : "–" }),
      el("td", { class: "isa", text: w.profile ? w.profile.isa.join(" ") || "–" : "–" }),
      el("td", { text: w.profile && w.profile.memory_mib ? `${(w.profile.memory_mib / 1024).toFixed(1)} GiB` : "–" }),
      el("td", { class: "num", title: "latency here / on the reference device (reference networks, geometric mean)", text: w.profile && w.profile.speed_factor != null ? `${w.profile.speed_factor.toFixed(2)}×` : "–" }),
      el("td", {}, w.current_trial ? el("a", { href: "/trials/" + w.current_trial, text: w.current_trial }) : "idle"), el("td", { class: "muted", text: fmt.when(w.last_seen) })))
      : el("tr", {}, el("td", { colspan: 12, class: "muted", text: "No workers have registered. Start one with `nas worker` or `nas up`." })));
  }
  await render();
  live("", render);
  setInterval(render, 10000);
}

async function newSearchPage() {
  document.title = "New search · nas";
  const [spaces, catalogue] = await Promise.all([api("/spaces"), api("/datasets")]);
  const asked = new URLSearchParams(location.search).get("dataset");
  const known = catalogue.datasets.map(d => d.name).concat(catalogue.uploaded.map(d => d.name));
  const wanted = known.includes(asked) ? asked : "fashion-mnist";
  const field = (name, labelText, input, hint) => el("label", { class: "field", "data-field": name }, labelText, input, hint ? el("span", { class: "muted", text: hint }) : null, el("span", { class: "error", role: "alert" }));
  const inp = (name, attrs) => el("input", Object.assign({ name, id: "f-" + name.replace(/\./g, "-") }, attrs));
  const sel = (name, options, value) => el("select", { name, id: "f-" + name.replace(/\./g, "-") }, options.map(o => el("option", { value: o, selected: o === value, text: o })));
  const form = el("form", { class: "spec", id: "spec-form", novalidate: true },
    el("fieldset", {}, el("legend", { text: "What" }),
      field("name", "Name", inp("name", { value: "my search", required: true })),
      field("dataset", "Dataset", el("select", { name: "dataset", id: "f-dataset" },
        el("optgroup", { label: "Built-in" }, catalogue.datasets.map(d => el("option", { value: d.name, selected: d.name === wanted, text: `${d.name} (${shapeText(d.input)}, ${d.classes} classes)` }))),
        catalogue.uploaded.length ? el("optgroup", { label: "Uploaded" }, catalogue.uploaded.map(d => el("option", { value: d.name, selected: d.name === wanted,
          text: `${d.name} (${shapeText(d.summary.input)}, ${d.summary.class_names.length} classes)` }))) : null),
        "built-in, or your own from the Datasets page"),
      field("space", "Search space", sel("space", Object.keys(spaces.presets), "small"), "blocks, channels and depths to choose from"),
      field("baselines", "Zoo baselines (comma-separated, optional)", inp("baselines", { value: "", placeholder: "lenet5, fashion_cnn" }), "trained first, for comparison; see the Zoo page")),
    el("fieldset", {}, el("legend", { text: "Strategy" }),
      field("strategy.kind", "Strategy", sel("strategy.kind", ["evolution", "random"], "evolution")),
      field("strategy.population", "Population", inp("strategy.population", { type: "number", min: 2, value: 20 })),
      field("strategy.sample", "Tournament size", inp("strategy.sample", { type: "number", min: 1, value: 5 }))),
    el("fieldset", {}, el("legend", { text: "Objective" }),
      field("objective.kind", "Kind", sel("objective.kind", ["reward", "pareto"], "reward"), "reward: one number (accuracy under a latency target); pareto: the accuracy/latency front, final models spread along it"),
      field("objective.latency.max_ms", "Latency limit (ms, empty: none)", inp("objective.latency.max_ms", { type: "number", step: "any", min: 0 }), "slower candidates are rejected before they train"),
      field("objective.reference.latency_ms", "Reference latency (ms, empty: the limit)", inp("objective.reference.latency_ms", { type: "number", step: "any", min: 0 }), "the hypervolume counts the front up to this latency"),
      field("objective.latency.target_ms", "Latency target (ms, empty: accuracy only)", inp("objective.latency.target_ms", { type: "number", step: "any", min: 0, value: 1 })),
      field("objective.latency.mode", "Mode", sel("objective.latency.mode", ["soft", "hard"], "soft"), "soft: smooth trade-off; hard: steep penalty over the target")),
    el("fieldset", {}, el("legend", { text: "Budget" }),
      field("budget.max_trials", "Trials", inp("budget.max_trials", { type: "number", min: 1, value: 20 })),
      field("budget.epochs", "Epochs per trial", inp("budget.epochs", { type: "number", min: 1, value: 1 })),
      field("budget.max_train_samples", "Training images per trial (empty: all)", inp("budget.max_train_samples", { type: "number", min: 1, value: 10000 })),
      field("budget.max_seconds", "Wall time (s, empty: none)", inp("budget.max_seconds", { type: "number", min: 1, step: "any" })),
      field("budget.parallelism", "Trials at once", inp("budget.parallelism", { type: "number", min: 1, value: 2 })),
      field("budget.max_epochs_total", "Compute: epochs in all (empty: no limit)", inp("budget.max_epochs_total", { type: "number", min: 1 }), "over every trial and rung"),
      field("seed", "Seed", inp("seed", { type: "number", min: 0, value: 0 }))),
    el("fieldset", {}, el("legend", { text: "Early stopping and final models" }),
      field("scheduler.kind", "Scheduler", sel("scheduler.kind", ["asha", "none"], "asha"), "asha: promising trials train longer, the rest stop early"),
      field("scheduler.min_epochs", "First rung (epochs)", inp("scheduler.min_epochs", { type: "number", min: 1, value: 1 })),
      field("scheduler.max_epochs", "Last rung (epochs)", inp("scheduler.max_epochs", { type: "number", min: 1, value: 9 })),
      field("scheduler.eta", "Reduction factor (eta)", inp("scheduler.eta", { type: "number", min: 2, value: 3 }), "about 1 in eta trials goes on at each rung"),
      field("final.top_k", "Final models (empty: none)", inp("final.top_k", { type: "number", min: 1, value: "" }), "the best architectures, retrained and tested once at the end"),
      field("final.epochs", "Final training epochs", inp("final.epochs", { type: "number", min: 1, value: 30 }))));
  const preview = el("pre", { id: "preview" });
  const submit = el("button", { type: "submit", form: "spec-form", id: "submit" }, "Start search");
  const status = el("p", { class: "error", role: "status" });
  function spec() {
    const v = n => form.elements[n].value.trim();
    const num = n => v(n) === "" ? undefined : Number(v(n));
    const s = { name: v("name"), dataset: v("dataset"), space: v("space"), strategy: { kind: v("strategy.kind") },
      budget: { max_trials: num("budget.max_trials"), epochs: num("budget.epochs"), parallelism: num("budget.parallelism") }, seed: num("seed") || 0 };
    if (s.strategy.kind === "evolution") Object.assign(s.strategy, { population: num("strategy.population"), sample: num("strategy.sample") });
    const maxMs = v("objective.latency.max_ms") === "" ? {} : { max_ms: num("objective.latency.max_ms") };
    if (v("objective.kind") === "pareto") {
      s.objective = { kind: "pareto", metrics: ["accuracy", "latency"], latency: maxMs };
      if (v("objective.reference.latency_ms") !== "") s.objective.reference = { latency_ms: num("objective.reference.latency_ms") };
    } else if (v("objective.latency.target_ms") !== "") s.objective = { latency: Object.assign({ target_ms: num("objective.latency.target_ms"), mode: v("objective.latency.mode") }, maxMs) };
    const baselines = v("baselines").split(",").map(b => b.trim()).filter(Boolean);
    if (baselines.length) s.baselines = baselines;
    if (v("budget.max_train_samples") !== "") s.budget.max_train_samples = num("budget.max_train_samples");
    if (v("budget.max_seconds") !== "") s.budget.max_seconds = num("budget.max_seconds");
    if (v("budget.max_epochs_total") !== "") s.budget.max_epochs_total = num("budget.max_epochs_total");
    if (v("scheduler.kind") === "asha") {
      s.scheduler = { kind: "asha", min_epochs: num("scheduler.min_epochs"), max_epochs: num("scheduler.max_epochs"), eta: num("scheduler.eta") };
      delete s.budget.epochs;
    }
    if (v("final.top_k") !== "") s.final = { top_k: num("final.top_k"), epochs: num("final.epochs") };
    return s;
  }
  const update = () => {
    preview.textContent = JSON.stringify(spec(), null, 2);
    const hide = (names, hidden) => { for (const n of names) form.querySelector(`[data-field="${n}"]`).hidden = hidden; };
    hide(["strategy.population", "strategy.sample"], form.elements["strategy.kind"].value !== "evolution");
    const asha = form.elements["scheduler.kind"].value === "asha";
    hide(["scheduler.min_epochs", "scheduler.max_epochs", "scheduler.eta"], !asha);
    hide(["budget.epochs"], asha);
    hide(["final.epochs"], form.elements["final.top_k"].value.trim() === "");
    const pareto = form.elements["objective.kind"].value === "pareto";
    hide(["objective.latency.target_ms", "objective.latency.mode"], pareto);
    hide(["objective.reference.latency_ms"], !pareto);
  };
  form.addEventListener("input", update);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    for (const f of form.querySelectorAll(".field")) { f.classList.remove("invalid"); f.querySelector(".error").textContent = ""; }
    status.textContent = "";
    submit.disabled = true;
    try {
      const created = await api("/searches", { method: "POST", body: JSON.stringify(spec()) });
      location.href = "/searches/" + created.id;
    } catch (err) {
      submit.disabled = false;
      const target = err.field && [...form.querySelectorAll(".field")].find(f => err.field === f.dataset.field || err.field.startsWith(f.dataset.field + ".") || f.dataset.field.startsWith(err.field));
      if (target) { target.classList.add("invalid"); target.querySelector(".error").textContent = err.message; target.querySelector("input,select").focus(); }
      else status.textContent = err.message;
    }
  });
  show(el("h1", { text: "New search" }), form,
    el("div", { class: "row", style: "margin:1rem 0" }, submit, status),
    el("h2", { text: "The spec it submits" }), preview);
  update();
}

// ---------- router ----------
async function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  let m;
  try {
    if (path === "/") await searchesPage();
    else if (path === "/searches/new") await newSearchPage();
    else if ((m = path.match(/^\/searches\/(\d+)$/))) await searchPage(m[1]);
    else if ((m = path.match(/^\/trials\/(\d+)$/))) await trialPage(m[1]);
    else if (path === "/zoo") await zooPage();
    else if (path === "/workers") await workersPage();
    else if (path === "/datasets") await datasetsPage();
    else throw new ApiError(404, { error: { message: "No page at " + path } });
    for (const a of document.querySelectorAll(".top nav a")) a.toggleAttribute("aria-current", a.getAttribute("href") === path);
    document.body.dataset.renderMs = Math.round(performance.now());
    document.body.dataset.ready = "true";
  } catch (e) { fail(e); document.body.dataset.ready = "error"; }
}
document.getElementById("token-form").addEventListener("submit", e => {
  e.preventDefault(); localStorage.setItem("nas-token", document.getElementById("token").value); location.reload();
});
route();
