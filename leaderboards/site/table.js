// collapse-bench leaderboard page: sortable, filterable tables and a detail view per entry.
// Plain JavaScript, no dependencies, so the page works from file:// and any static host.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("data").textContent);

  function cellKey(row, index, numeric) {
    const cell = row.cells[index];
    if (!numeric) return cell.textContent.trim().toLowerCase();
    const v = cell.dataset.value;
    return v === "" || v === undefined ? Infinity : parseFloat(v);
  }

  // Sorting: a click on a header sorts by that column; a second click reverses.
  function sortable(table) {
    table.querySelectorAll("th").forEach(function (th, index) {
      th.addEventListener("click", function () {
        const numeric = th.dataset.type === "number";
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = cellKey(a, index, numeric), y = cellKey(b, index, numeric);
          const order = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? order : -order;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  // Filtering: rows whose text does not contain every typed word are hidden.
  function filterable(input, table) {
    input.addEventListener("input", function () {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.from(table.tBodies[0].rows).forEach(function (row) {
        const text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (w) { return text.includes(w); });
      });
    });
  }

  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const node = tag === "svg" || ["path", "polyline", "text", "line"].includes(tag)
      ? document.createElementNS(SVG, tag) : document.createElement(tag);
    Object.entries(attrs || {}).forEach(function (kv) { node.setAttribute(kv[0], kv[1]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One small chart: the mean by generation, with its interval as a band.
  function chart(name, points) {
    const w = 260, h = 120, pad = 24;
    const finite = points.filter(function (p) { return p[0] !== null; });
    const all = [];
    points.forEach(function (p) { p.forEach(function (v) { if (v !== null) all.push(v); }); });
    const lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    const span = hi > lo ? hi - lo : 1;
    const x = function (g) { return pad + (w - 2 * pad) * g / Math.max(1, points.length - 1); };
    const y = function (v) { return h - pad - (h - 2 * pad) * (v - lo) / span; };
    const svg = el("svg", { width: w, height: h, viewBox: "0 0 " + w + " " + h, class: "chart" });
    const banded = points.map(function (p, g) { return [g, p]; }).filter(function (q) { return q[1][1] !== null; });
    if (banded.length) {
      const upper = banded.map(function (q) { return x(q[0]) + "," + y(q[1][2]); });
      const lower = banded.slice().reverse().map(function (q) { return x(q[0]) + "," + y(q[1][1]); });
      svg.appendChild(el("path", { d: "M" + upper.concat(lower).join("L") + "Z", class: "band" }));
    }
    const line = points.map(function (p, g) { return p[0] === null ? null : x(g) + "," + y(p[0]); })
      .filter(Boolean).join(" ");
    svg.appendChild(el("polyline", { points: line, class: "mean" }));
    svg.appendChild(el("text", { x: pad, y: 12 }, name));
    svg.appendChild(el("text", { x: 2, y: h - pad }, finite.length ? lo.toPrecision(3) : ""));
    svg.appendChild(el("text", { x: 2, y: pad + 4 }, finite.length ? hi.toPrecision(3) : ""));
    svg.appendChild(el("text", { x: w - pad - 30, y: h - 4 }, "generation"));
    return svg;
  }

  function showDetail(section, protocol, entry) {
    const box = section.querySelector(".detail");
    box.replaceChildren();
    box.appendChild(el("h3", {}, entry.model + " / " + entry.mixer + " (" + entry.seeds + " seeds)"));
    const charts = el("div", { class: "charts" });
    Object.entries(entry.curves).forEach(function (kv) { charts.appendChild(chart(kv[0], kv[1])); });
    box.appendChild(charts);
    box.appendChild(el("h4", {}, "Sample text by generation (first seed)"));
    entry.samples.forEach(function (s) {
      const item = el("div", { class: "sample" });
      item.appendChild(el("b", {}, "generation " + s[0]));
      item.appendChild(el("pre", {}, s[1]));
      box.appendChild(item);
    });
    box.hidden = false;
  }

  document.querySelectorAll("section.protocol").forEach(function (section) {
    const protocol = data[parseInt(section.dataset.protocol, 10)];
    const table = section.querySelector("table.board");
    sortable(table);
    filterable(section.querySelector("input.filter"), table);
    Array.from(table.tBodies[0].rows).forEach(function (row) {
      row.addEventListener("click", function () {
        showDetail(section, protocol, protocol.entries[parseInt(row.dataset.entry, 10)]);
      });
    });
  });
})();
