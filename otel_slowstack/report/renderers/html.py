"""One self-contained HTML page: per route, an interactive flame graph and
the ranked table of hottest frames.

Everything the page needs is inside it (styles, script, data); a
Content-Security-Policy forbids any network access, so it opens the same
from a laptop, an e-mail attachment or an air-gapped machine. The flame
graph is drawn with plain positioned ``div`` elements: click a frame to zoom
into it, click an ancestor (or press Escape) to zoom out, type in the search
box (or click a table row) to highlight a function everywhere.
"""

from __future__ import annotations

import html
import json

from otel_slowstack.version import __version__

from ..stacks import Frame
from .ranking import HEADERS, coverage_line, duration, killed_summary, outcome_text, ranking_caption, ranking_rows
from .text import stack_summary

MAX_ROUTES = 30


def flame_tree(route) -> dict:
    """The route's stacks merged into one tree: ``{n, l, p, k, v, s, c}``
    (name, location, full path, kind, samples on stack, samples innermost, children)."""
    root: dict = {"n": route.route, "l": "", "p": "", "k": "root", "v": 0, "s": 0, "c": []}
    index: dict = {}
    for stack, count in route.stacks.items():
        node = root
        node["v"] += count
        for frame in stack:
            key = (id(node), frame)
            child = index.get(key)
            if child is None:
                child = _node(frame)
                node["c"].append(child)
                index[key] = child
            child["v"] += count
            node = child
        node["s"] += count
    _sort(root)
    return root


def _node(frame: Frame) -> dict:
    kind = "elided" if frame.is_elided else ("app" if frame.is_app else "lib")
    return {"n": frame.function, "l": frame.location(), "p": frame.file, "k": kind, "v": 0, "s": 0, "c": []}


def _sort(node: dict) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        current["c"].sort(key=lambda c: (-c["v"], c["n"], c["l"]))
        stack.extend(current["c"])


def _script_json(value) -> str:
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _route_section(number: int, route, top: int) -> str:
    rows = []
    for rank in route.hottest(top):
        frame = rank.frame
        kind = "app" if frame.is_app else "lib"
        rows.append(
            f'<tr class="{kind}" data-function="{_e(frame.function)}" title="{_e(frame.file)}">'
            f'<td class="num">{rank.innermost_share:.0%}</td><td class="num">{rank.on_stack_share:.0%}</td>'
            f"<td>{kind}</td><td>{_e(frame.location())}</td><td>{_e(frame.function)}</td></tr>"
        )
    stacks = "".join(
        f'<li><span class="num">{count / max(route.samples, 1):.0%}</span> {_e(stack_summary(stack))}</li>'
        for stack, count in route.top_stacks(3)
    )
    n_plus_one = "".join(
        f"<li><b>{finding.max_count}&times;</b> in {finding.requests} request(s): <code>{_e(finding.statement)}</code>"
        + (f" at {_e(finding.where().label())}" if finding.where() is not None else "")
        + "</li>"
        for finding in route.n_plus_ones()
    )
    slowest = "".join(
        f"<li>{elapsed:.0f} ms &mdash; trace <code>{_e(trace_id)}</code></li>"
        for elapsed, trace_id, _span in route.slowest_requests()
    )
    parts = [
        f'<section class="route" id="route-{number}">',
        f"<h2>{_e(route.route)}</h2>",
        f'<p class="counts">{route.requests} slow request(s), {route.samples} sample(s)'
        + (f", {route.killed_total} did not finish" if route.killed_total else "") + "</p>",
        f'<p class="verdict verdict-{route.kind()}">{_e(route.verdict())}</p>',
    ]
    if route.samples:
        parts += [
            f'<div class="flame" data-route="{number}" role="img" aria-label="flame graph of {_e(route.route)}"></div>',
            '<p class="details">&nbsp;</p>',
            '<h3>Hottest frames</h3><table class="ranked"><thead><tr><th>innermost</th><th>on stack</th>'
            "<th></th><th>file:line</th><th>function</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>",
            f"<h3>Hottest stacks</h3><ul>{stacks}</ul>",
        ]
    if n_plus_one:
        parts.append(f"<h3>N+1 statements</h3><ul>{n_plus_one}</ul>")
    if slowest:
        parts.append(f"<h3>Longest sampled requests</h3><ul>{slowest}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _overview(report, top: int) -> str:
    """The ranking of routes by worker time and the requests that did not finish."""
    parts = []
    if report.ranking:
        head = "".join(f"<th>{_e(h)}</th>" for h in HEADERS)
        body = "".join(
            "<tr>" + "".join(f'<td{" class=num" if i else ""}>{_e(cell)}</td>' for i, cell in enumerate(row)) + "</tr>"
            for row in ranking_rows(report)[: max(top, 1) * 3]
        )
        parts.append(
            '<section id="ranking"><h2>Where the worker time goes</h2>'
            f'<table class="ranking"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'<p class="note">{_e(ranking_caption(report))}</p></section>'
        )
    killed_routes = report.killed_routes()
    if killed_routes:
        items = []
        for route in killed_routes:
            listed = "".join(
                f"<li>trace <code>{_e(k.trace_id or '?')}</code>: {_e(outcome_text(k.outcome))}"
                + (f" at {_e(duration(k.elapsed_ms))}" if k.elapsed_ms is not None else "")
                + f"; last stack: {_e(stack_summary(k.frames))}</li>"
                for k in route.killed_listed
            )
            items.append(f"<li><b>{_e(route.route)}</b>: {_e(killed_summary(route))}<ul>{listed}</ul></li>")
        parts.append('<section id="killed"><h2>Requests that did not finish</h2><ul>' + "".join(items) + "</ul></section>")
    return "\n".join(parts) + "\n"


def render_html(report, top: int = 10) -> str:
    routes = report.routes[:MAX_ROUTES]
    data = {"routes": [flame_tree(route) if route.samples else None for route in routes]}
    notes = list(report.notes)
    if len(report.routes) > MAX_ROUTES:
        notes.append(f"{len(report.routes) - MAX_ROUTES} routes with fewer samples are left out of this page")
    sections = _overview(report, top) + "\n".join(_route_section(i, route, top) for i, route in enumerate(routes))
    notes_html = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    title = f"otel-slowstack report: {report.source}"
    return PAGE.format(
        title=_e(title),
        summary=_e(
            f"{report.requests} slow request(s), {report.samples} sample(s), "
            f"{len(report.routes)} route(s) ({report.spans_read} spans read)"
            + (f"; {coverage_line(report)}" if report.coverage else "")
        ),
        sections=sections,
        notes=notes_html,
        data=_script_json(data),
        style=STYLE,
        script=SCRIPT,
        version=_e(__version__),
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{summary}</p>
<p class="help">Click a frame to zoom in, an ancestor or <kbd>Esc</kbd> to zoom out. Orange frames are the application's own code, blue ones libraries.
<label>Search <input type="search" id="search" placeholder="function or file"></label> <span id="matched"></span></p>
{notes}
</header>
<main>
{sections}
</main>
<footer>otel-slowstack {version}</footer>
<script type="application/json" id="slowstack-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 1.5em 2em; color: #1d1d1f; }
h1 { font-size: 1.3em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .2em; border-bottom: 2px solid #e8e8ef; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
.help, .counts, footer, .note { color: #555; }
.verdict { font-weight: 600; padding: .3em .6em; border-left: 4px solid #999; background: #f6f6f9; }
.verdict-computing { border-color: #e8590c; }
.verdict-waiting { border-color: #1c7ed6; }
.verdict-mixed { border-color: #ae3ec9; }
.flame { position: relative; width: 100%; overflow: hidden; border: 1px solid #ddd; background: #fff; }
.flame .frame { position: absolute; height: 17px; box-sizing: border-box; border: 1px solid #fff; border-width: 0 1px 1px 0;
  overflow: hidden; white-space: nowrap; text-overflow: ellipsis; font: 11px/16px ui-monospace, Menlo, Consolas, monospace;
  padding: 0 3px; cursor: pointer; color: #222; }
.flame .frame:hover { filter: brightness(1.12); outline: 1px solid #333; z-index: 2; }
.flame .ancestor { opacity: .55; }
.flame .match { outline: 2px solid #d6336c; outline-offset: -2px; }
.flame .dim { opacity: .3; }
.details { font: 12px ui-monospace, Menlo, Consolas, monospace; min-height: 1.4em; color: #333; }
table.ranked, table.ranking { border-collapse: collapse; }
table.ranking th, table.ranking td { padding: 2px 10px; border-bottom: 1px solid #eee; }
table.ranking td.num, table.ranking td[class=num] { text-align: right; font-variant-numeric: tabular-nums; }
#killed h2 { color: #c92a2a; }
table.ranked th, table.ranked td { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
table.ranked tr { cursor: pointer; }
table.ranked tr.app td { font-weight: 600; color: #a1400b; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
span.num { text-align: right; font-variant-numeric: tabular-nums; display: inline-block; min-width: 3em; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; background: #f3f3f6; padding: 0 3px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var ROW = 17;
  var data = JSON.parse(document.getElementById("slowstack-data").textContent);
  var flames = [];

  function hash(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) { h = (h * 31 + text.charCodeAt(i)) | 0; }
    return Math.abs(h);
  }

  function colour(node) {
    var h = hash(node.n + node.l);
    if (node.k === "app") { return "hsl(" + (22 + h % 22) + ", 88%, " + (58 + h % 12) + "%)"; }
    if (node.k === "lib") { return "hsl(" + (195 + h % 30) + ", 45%, " + (70 + h % 12) + "%)"; }
    if (node.k === "root") { return "hsl(0, 0%, 82%)"; }
    return "hsl(0, 0%, 90%)";
  }

  function link(node, parent, depth) {
    var stack = [[node, parent, depth]];
    var deepest = 0;
    while (stack.length) {
      var item = stack.pop();
      item[0].parent = item[1];
      item[0].depth = item[2];
      if (item[2] > deepest) { deepest = item[2]; }
      for (var i = 0; i < item[0].c.length; i++) { stack.push([item[0].c[i], item[0], item[2] + 1]); }
    }
    return deepest;
  }

  function Flame(container, root, details) {
    this.container = container;
    this.root = root;
    this.details = details;
    this.focus = root;
    this.query = "";
    this.deepest = link(root, null, 0);
    this.render();
  }

  Flame.prototype.describe = function (node) {
    var share = (100 * node.v / this.root.v).toFixed(1);
    var own = node.s ? ", innermost in " + node.s : "";
    var where = node.l ? " \u2014 " + node.l : "";
    return node.n + where + " \u2014 on the stack in " + node.v + " of " + this.root.v + " samples (" + share + "%)" + own +
      (node.p && node.p !== node.l ? " \u2014 " + node.p : "");
  };

  Flame.prototype.box = function (node, left, width, extraClass) {
    var self = this;
    var div = document.createElement("div");
    div.className = "frame " + node.k + (extraClass ? " " + extraClass : "");
    div.style.left = left + "%";
    div.style.width = width + "%";
    div.style.top = (node.depth * ROW) + "px";
    div.style.background = colour(node);
    div.textContent = node.k === "root" ? node.n : node.n + (node.l ? " " + node.l : "");
    div.title = this.describe(node);
    if (this.query) {
      var hit = (node.n + " " + node.l + " " + node.p).toLowerCase().indexOf(this.query) >= 0;
      div.className += hit ? " match" : " dim";
    }
    div.addEventListener("click", function () { self.zoom(node); });
    div.addEventListener("mouseenter", function () { self.details.textContent = self.describe(node); });
    this.container.appendChild(div);
    this.drawn.push(div);
    return div;
  };

  Flame.prototype.render = function () {
    this.container.textContent = "";
    this.drawn = [];
    var pixels = this.container.clientWidth || 1000;
    for (var up = this.focus.parent; up; up = up.parent) { this.box(up, 0, 100, "ancestor"); }
    var queue = [[this.focus, 0, 100]];
    var bottom = this.focus.depth;
    while (queue.length) {
      var item = queue.shift();
      var node = item[0], left = item[1], width = item[2];
      if (width * pixels / 100 < 0.6) { continue; }
      this.box(node, left, width, "");
      if (node.depth > bottom) { bottom = node.depth; }
      var x = left;
      for (var i = 0; i < node.c.length; i++) {
        var w = width * node.c[i].v / node.v;
        queue.push([node.c[i], x, w]);
        x += w;
      }
    }
    this.container.style.height = ((bottom + 1) * ROW + 2) + "px";
    this.container.setAttribute("data-frames", String(this.drawn.length));
  };

  Flame.prototype.zoom = function (node) {
    this.focus = node;
    this.render();
    this.details.textContent = this.describe(node);
  };

  Flame.prototype.search = function (query) {
    this.query = query.toLowerCase();
    this.render();
    if (!this.query) { return 0; }
    var matched = 0;
    var walk = [this.root];
    var self = this;
    while (walk.length) {
      var node = walk.pop();
      var hit = node.k !== "root" && (node.n + " " + node.l + " " + node.p).toLowerCase().indexOf(self.query) >= 0;
      if (hit) { matched += node.v; continue; }
      for (var i = 0; i < node.c.length; i++) { walk.push(node.c[i]); }
    }
    return matched / this.root.v;
  };

  var containers = document.querySelectorAll(".flame");
  for (var i = 0; i < containers.length; i++) {
    var tree = data.routes[Number(containers[i].getAttribute("data-route"))];
    if (!tree) { continue; }
    var details = containers[i].nextElementSibling;
    flames.push(new Flame(containers[i], tree, details));
  }

  var input = document.getElementById("search");
  var matchedText = document.getElementById("matched");
  function search(query) {
    var shares = flames.map(function (f) { return f.search(query); });
    matchedText.textContent = query ? "highlighted: " + shares.map(function (s) { return (100 * s).toFixed(0) + "%"; }).join(" / ") +
      " of each route's samples" : "";
  }
  input.addEventListener("input", function () { search(input.value.trim()); });

  var rows = document.querySelectorAll("table.ranked tbody tr");
  for (var r = 0; r < rows.length; r++) {
    rows[r].addEventListener("click", function () {
      input.value = this.getAttribute("data-function");
      search(input.value);
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      flames.forEach(function (f) { if (f.focus.parent) { f.zoom(f.focus.parent); } });
    }
  });

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { flames.forEach(function (f) { f.render(); }); }, 100);
  });

  window.slowstackFlames = flames;
  document.body.setAttribute("data-flames", String(flames.length));
})();
"""
