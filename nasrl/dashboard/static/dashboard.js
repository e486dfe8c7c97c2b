/* nasrl dashboard: each page polls the dashboard's JSON API (which reads the controller's
   RPCs) and redraws. Text from the API goes in with textContent, never as HTML; the only
   markup inserted is the server's own SVG drawing of a network. Charts: uPlot (vendored). */
(() => {
  "use strict";

  const body = document.body;
  const REFRESH = Number(body.dataset.refresh) || 2000;
  const banner = document.getElementById("banner");

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function cell(text, cls) {
    return el("td", { class: cls, text });
  }

  function showDown(message) {
    banner.textContent = message;
    banner.hidden = false;
    body.classList.add("controller-down");
  }

  function showUp() {
    if (!banner.hidden) {
      banner.hidden = true;
      banner.textContent = "";
    }
    body.classList.remove("controller-down");
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { cache: "no-store" });
    } catch (err) {
      showDown("The dashboard does not answer; retrying…");
      throw err;
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = { error: response.statusText };
    }
    if (response.status === 503) {
      showDown(`${data.error} — retrying; this page fills in when it is back.`);
      throw new HttpError(503, data.error);
    }
    if (!response.ok) throw new HttpError(response.status, data.error || response.statusText);
    showUp();
    return data;
  }

  /** Run ``step`` now and again every REFRESH ms after it finishes; a 404 ends it. */
  function poll(step) {
    const run = async () => {
      try {
        await step();
      } catch (err) {
        if (err instanceof HttpError && err.status === 404) return;
      }
      setTimeout(run, REFRESH);
    };
    run();
  }

  function started(seconds) {
    const d = new Date(seconds * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  const acc = (x) => (x === null || x === undefined ? "-" : x.toFixed(4));

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
  const wholeTicks = (u, ticks) => ticks.map((t) => t.toLocaleString("en-US"));
  const costTicks = (u, ticks) =>
    ticks.map((t) => (t === null || t === undefined ? "" : t >= 1e9 ? `${t / 1e9}G` : t >= 1e6 ? `${t / 1e6}M` : t >= 1e3 ? `${t / 1e3}k` : String(t)));

  /** Axes in the page's colours; the x axis counts (evaluations, epochs) unless given. */
  function axes(xLabel, yLabel, xAxis) {
    const stroke = css("--muted");
    const grid = { stroke: css("--line"), width: 1 };
    return [
      { label: xLabel, stroke, grid, ticks: grid, ...(xAxis || { incrs: WHOLE, values: wholeTicks }) },
      { label: yLabel, stroke, grid, ticks: grid, values: (u, ticks) => ticks.map((t) => t.toFixed(2)) },
    ];
  }

  /** A uPlot chart that fills its container and is rebuilt when the theme changes. */
  class Chart {
    constructor(container, build) {
      this.container = container;
      this.build = build; // () => uPlot options (without width/height)
      this.plot = null;
      this.data = null;
      window.addEventListener("resize", () => this.resize());
      matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.rebuild());
    }
    size() {
      const width = Math.max(240, this.container.clientWidth);
      return { width, height: this.container.classList.contains("small") ? 160 : width < 560 ? 220 : 280 };
    }
    set(data) {
      this.data = data;
      if (this.plot) this.plot.setData(data);
      else this.rebuild();
    }
    rebuild() {
      if (!this.data) return;
      if (this.plot) this.plot.destroy();
      this.container.replaceChildren();
      this.plot = new uPlot({ ...this.build(), ...this.size() }, this.data, this.container);
    }
    resize() {
      if (this.plot) this.plot.setSize(this.size());
    }
  }

  // ------------------------------------------------------------------ searches page

  function searchesPage() {
    const tbody = document.querySelector("#searches tbody");
    poll(async () => {
      const data = await getJSON("/api/searches");
      const rows = data.searches.map((s) =>
        el(
          "tr",
          { "data-search-id": s.id },
          el("td", {}, el("a", { href: `/searches/${encodeURIComponent(s.id)}`, text: s.name || s.id }), " ", el("code", { class: "ids", text: s.id })),
          cell(s.agent),
          cell(s.dataset),
          el("td", {}, el("span", { class: `state ${s.state}`, text: s.state })),
          cell(s.evaluated_text, "num"),
          cell(s.best_text, "num"),
          cell(s.trainer_seconds_text, "num"),
          cell(started(s.created)),
        ),
      );
      if (!rows.length) rows.push(el("tr", { class: "placeholder" }, el("td", { colspan: 8, text: "No searches yet: start one with nasrl search." })));
      tbody.replaceChildren(...rows);
    });
  }

  // ------------------------------------------------------------------ trainers page

  function trainersPage() {
    const tbody = document.querySelector("#trainers tbody");
    poll(async () => {
      const data = await getJSON("/api/trainers");
      const rows = data.trainers.map((t) =>
        el(
          "tr",
          { "data-target": t.target },
          el("td", {}, el("code", { text: t.target })),
          el("td", {}, el("span", { class: `state ${t.health === "serving" ? "done" : "stopped"}`, text: t.health }), t.error ? el("div", { class: "note", text: t.error }) : null),
          cell(t.latency_ms === undefined ? "-" : t.latency_ms.toFixed(1), "num"),
          cell(t.slots === undefined ? "-" : `${t.busy_slots} / ${t.slots}`, "num slots"),
          cell(t.devices === undefined ? "-" : t.ready ? t.devices.join(", ") : "waiting for a GPU"),
          cell(t.mode || "-"),
          cell(t.weights_kept === undefined ? "-" : `${t.weights_kept.toLocaleString("en-US")} (${t.weights_mb.toFixed(1)} MB)`, "num"),
          cell(t.datasets.map((d) => (d.error ? `${d.name} (unusable)` : d.name)).join(", ") || "-"),
        ),
      );
      if (!rows.length) rows.push(el("tr", { class: "placeholder" }, el("td", { colspan: 8, text: data.error || "No trainer found." })));
      tbody.replaceChildren(...rows);
    });
  }

  // ------------------------------------------------------------------ search page

  /** The front no other child beats on both accuracy and cost, cheapest first (as the
      controller's Leaderboard(pareto) computes it). */
  function paretoFront(ids, accs, costs) {
    const order = ids.map((_, i) => i).sort((a, b) => costs[a] - costs[b] || accs[b] - accs[a] || ids[a] - ids[b]);
    const front = [];
    for (const i of order) if (!front.length || accs[i] > accs[front[front.length - 1]]) front.push(i);
    return front;
  }

  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 100 20");
    svg.setAttribute("width", "100");
    svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    if (values.length > 1) {
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      const pts = values.map((v, i) => `${((i / (values.length - 1)) * 100).toFixed(1)},${(18 - (hi > lo ? ((v - lo) / (hi - lo)) * 16 : 8)).toFixed(1)}`);
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", css("--accent"));
      line.setAttribute("stroke-width", "1.5");
      svg.append(line);
    }
    return svg;
  }

  function searchPage() {
    const sid = body.dataset.searchId;
    const api = `/api/searches/${encodeURIComponent(sid)}`;
    const state = {
      cursor: 0,
      base: { id: [], accuracy: [], params: [], flops: [], seconds: [], stopped: [] },
      tail: { id: [], accuracy: [], params: [], flops: [], seconds: [], stopped: [] },
      board: [],
      sort: { key: "rank", dir: 1 },
      selected: null,
      history: {},
      stopped: false,
    };

    const evalsBox = document.getElementById("chart-evals");
    const costBox = document.getElementById("chart-cost");
    const curvesBox = document.getElementById("chart-curves");
    const metricSelect = document.getElementById("cost-metric");

    const evals = new Chart(evalsBox, () => ({
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.max(0, lo - 0.02), Math.min(1, hi + 0.02)] } },
      axes: axes("evaluation", "validation accuracy"),
      series: [
        { label: "evaluation" },
        { label: "child", stroke: css("--point"), paths: () => null, points: { show: true, size: 5, fill: css("--point") }, value: (u, v) => acc(v) },
        { label: "best so far", stroke: css("--best"), width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: (u, v) => acc(v) },
      ],
    }));
    const cost = new Chart(costBox, () => ({
      scales: { x: { time: false, distr: 3 }, y: { range: (u, lo, hi) => [Math.max(0, lo - 0.02), Math.min(1, hi + 0.02)] } },
      axes: axes(metricSelect.value === "params" ? "parameters" : "FLOPs", "validation accuracy", { values: costTicks }),
      series: [
        { label: metricSelect.value, value: (u, v) => (v === null ? "-" : Math.round(v).toLocaleString("en-US")) },
        { label: "child", stroke: css("--point"), paths: () => null, points: { show: true, size: 5, fill: css("--point") }, value: (u, v) => acc(v) },
        { label: "Pareto front", stroke: css("--front"), width: 2, spanGaps: true, paths: uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 7, fill: css("--front") }, value: (u, v) => acc(v) },
      ],
    }));
    let curvesSeries = [];
    const curves = new Chart(curvesBox, () => ({
      legend: { show: false },
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.max(0, lo - 0.02), Math.min(1, hi + 0.02)] } },
      axes: axes("epoch", "validation accuracy"),
      series: [{ label: "epoch" }, ...curvesSeries],
    }));
    metricSelect.addEventListener("change", () => {
      cost.rebuild();
      drawCost();
    });

    function columns() {
      const all = {};
      for (const key of Object.keys(state.base)) all[key] = state.base[key].concat(state.tail[key]);
      return all;
    }

    function drawEvals(all) {
      const n = all.id.length;
      const xs = Array.from({ length: n }, (_, i) => i + 1);
      const best = [];
      let top = -Infinity;
      for (const a of all.accuracy) {
        top = Math.max(top, a);
        best.push(top);
      }
      evals.set([xs, all.accuracy, best]);
      evalsBox.dataset.points = String(n);
      evalsBox.dataset.best = n ? best[n - 1].toFixed(4) : "";
    }

    function drawCost(all = columns()) {
      const metric = metricSelect.value;
      const costs = all[metric].map((c) => Math.max(1, c));
      const front = paretoFront(all.id, all.accuracy, costs);
      const onFront = new Set(front);
      const order = all.id.map((_, i) => i).sort((a, b) => costs[a] - costs[b] || all.accuracy[b] - all.accuracy[a]);
      cost.set([order.map((i) => costs[i]), order.map((i) => all.accuracy[i]), order.map((i) => (onFront.has(i) ? all.accuracy[i] : null))]);
      costBox.dataset.front = front.map((i) => all.id[i]).join(",");
      costBox.dataset.metric = metric;
    }

    async function loadChildren() {
      const data = await getJSON(`${api}/children?after=${state.cursor}`);
      for (const key of Object.keys(state.base)) state.base[key].push(...data.settled[key]);
      state.tail = data.tail;
      state.cursor = data.cursor;
      const all = columns();
      drawEvals(all);
      drawCost(all);
    }

    async function loadCurves(lastId) {
      const data = await getJSON(`${api}/curves?after=${Math.max(0, lastId - 20)}`);
      const shown = data.curves.slice(-20);
      const epochs = Math.max(1, ...shown.map((c) => Math.max(c.validation.length, c.reports.length)));
      const xs = Array.from({ length: epochs }, (_, i) => i + 1);
      const palette = [css("--accent"), css("--best"), css("--front"), css("--muted")];
      const series = [];
      const data2 = [xs];
      shown.forEach((c, k) => {
        const fromResult = c.validation.length > 0;
        const ys = xs.map((x) => (fromResult ? c.validation[x - 1] : c.reports.find((r) => r.epoch === x)?.accuracy) ?? null);
        const stops = c.reports.filter((r) => r.stop).map((r) => r.epoch - 1);
        series.push({
          label: `child ${c.id}`,
          stroke: palette[k % palette.length],
          width: 1.5,
          dash: fromResult ? undefined : [5, 4],
          points: { show: (u, si) => stops.length > 0, size: 9, stroke: css("--stop"), fill: css("--stop"), filter: () => stops },
        });
        data2.push(ys);
      });
      const changed = series.length !== curvesSeries.length || series.some((s, i) => s.label !== curvesSeries[i].label || s.dash !== curvesSeries[i].dash);
      curvesSeries = series;
      curvesBox.dataset.children = shown.map((c) => c.id).join(",");
      curvesBox.dataset.stops = shown.filter((c) => c.reports.some((r) => r.stop)).map((c) => c.id).join(",");
      if (changed) {
        curves.data = data2;
        curves.rebuild();
      } else curves.set(data2);
    }

    function fact(label, value, id) {
      return el("div", {}, el("dt", { text: label }), el("dd", { id, text: value }));
    }

    function drawHead(summary) {
      const s = summary.search;
      const set = summary.settings;
      document.getElementById("search-name").textContent = s.name || s.id;
      document.title = `${s.name || s.id} · nasrl dashboard`;
      const badge = document.getElementById("search-state");
      badge.textContent = s.state;
      badge.className = `state ${s.state}`;
      document.getElementById("search-facts").replaceChildren(
        fact("agent", set.agent),
        fact("dataset", set.dataset),
        fact("space", set.space),
        fact("evaluated / budget", s.evaluated_text, "fact-evaluated"),
        fact("best", s.best_text, "fact-best"),
        fact("trainer-s", s.trainer_seconds_text),
        fact("in flight", summary.counts.in_flight.toLocaleString("en-US")),
        fact("cached", summary.counts.cached.toLocaleString("en-US")),
        fact("failed", summary.counts.failed.toLocaleString("en-US")),
        fact("epochs", String(set.epochs)),
        fact("early stopping", set.early_stopping),
        fact("started", started(s.created)),
      );
    }

    function drawProgress(progress) {
      const tbody = document.querySelector("#progress tbody");
      const rows = Object.entries(progress).map(([key, value]) => {
        const hist = (state.history[key] = state.history[key] || []);
        if (hist[hist.length - 1] !== value || hist.length < 2) hist.push(value);
        if (hist.length > 200) hist.shift();
        return el("tr", { "data-key": key }, cell(key), cell(Number.isInteger(value) ? value.toLocaleString("en-US") : value.toPrecision(6), "num"), el("td", {}, sparkline(hist)));
      });
      if (!rows.length) rows.push(el("tr", { class: "placeholder" }, el("td", { colspan: 3, text: "This agent reports no progress numbers." })));
      tbody.replaceChildren(...rows);
      document.getElementById("chart-progress").hidden = true;
    }

    function sortedBoard() {
      const { key, dir } = state.sort;
      return [...state.board].sort((a, b) => {
        const x = a[key];
        const y = b[key];
        const c = typeof x === "string" ? x.localeCompare(y) : x - y;
        return dir * c || a.rank - b.rank;
      });
    }

    function drawBoard() {
      const tbody = document.querySelector("#leaderboard tbody");
      const rows = sortedBoard().map((e) =>
        el(
          "tr",
          { class: `clickable${state.selected === e.id ? " selected" : ""}`, "data-child": e.id, tabindex: 0, onclick: () => select(e.id), onkeydown: (ev) => ev.key === "Enter" && select(e.id) },
          cell(String(e.rank), "num"),
          cell(e.architecture, "arch"),
          cell(e.accuracy_text, "num"),
          cell(e.test_accuracy_text, "num"),
          cell(e.params_text, "num"),
          cell(e.mflops_text, "num"),
          cell(e.seconds_text, "num"),
          cell(e.reward_text, "num"),
        ),
      );
      if (!rows.length) rows.push(el("tr", { class: "placeholder" }, el("td", { colspan: 8, text: "No results yet." })));
      tbody.replaceChildren(...rows);
      for (const th of document.querySelectorAll("#leaderboard th")) {
        if (th.dataset.key === state.sort.key) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      }
    }

    for (const th of document.querySelectorAll("#leaderboard th")) {
      th.addEventListener("click", () => {
        const key = th.dataset.key;
        const numericHigh = ["accuracy", "test_accuracy", "reward"].includes(key);
        state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: numericHigh ? -1 : 1 };
        drawBoard();
      });
    }

    async function copy(text, button) {
      try {
        await navigator.clipboard.writeText(text);
      } catch (err) {
        const area = el("textarea", {}, text);
        document.body.append(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    }

    async function select(id) {
      state.selected = id;
      drawBoard();
      const box = document.getElementById("child-detail");
      box.hidden = false;
      box.replaceChildren(el("p", { class: "note", text: `Loading child ${id}…` }));
      const c = await getJSON(`${api}/children/${id}`);
      const graph = el("div", { class: "graph" });
      graph.innerHTML = c.svg; // the server's own drawing, built from the parsed network
      const curveBox = el("div", { class: "chart small", id: "child-curve" });
      const copyButton = el("button", { type: "button", class: "copy", onclick: () => copy(c.architecture, copyButton), text: "Copy" });
      const downloads = Object.entries(c.downloads || {}).map(([fmt, url]) => el("a", { href: url, download: "", "data-format": fmt, text: fmt === "python" ? "PyTorch module (.py + .pt, zip)" : "ONNX" }));
      box.replaceChildren(
        el("h3", { text: `Child ${c.id}` }),
        el("div", { class: "copyable" }, el("pre", { class: "arch", id: "child-arch", text: c.architecture }), copyButton),
        el(
          "dl",
          { class: "facts" },
          fact("val acc", c.accuracy_text || "-"),
          fact("test acc", c.test_accuracy_text || "-"),
          fact("params", c.params_text || "-"),
          fact("MFLOPs", c.mflops_text || "-"),
          fact("seconds", c.seconds_text || "-"),
          fact("device", c.device || "-"),
          fact("stopped early", c.stopped_early ? "yes" : "no"),
        ),
        el("div", { class: "cols" }, graph, el("div", {}, el("h4", { text: "Learning curve" }), curveBox)),
        el("p", { class: "downloads" }, ...(downloads.length ? [el("strong", { text: "Download: " }), ...downloads] : [el("span", { class: "note", text: body.dataset.downloads === "1" ? "" : "Start the dashboard with --trainers to download trained models." })])),
      );
      const xs = c.validation.map((_, i) => i + 1);
      const stops = c.reports.filter((r) => r.stop).map((r) => r.epoch - 1);
      new Chart(curveBox, () => ({
        scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.max(0, lo - 0.02), Math.min(1, hi + 0.02)] } },
        axes: axes("epoch", "accuracy"),
        series: [
          { label: "epoch" },
          { label: "validation", stroke: css("--accent"), width: 2, value: (u, v) => acc(v), points: { show: true, size: 8, stroke: css("--stop"), fill: css("--stop"), filter: () => stops } },
          { label: "train", stroke: css("--muted"), width: 1.5, dash: [4, 3], value: (u, v) => acc(v) },
        ],
      })).set([xs, c.validation, c.train]);
    }

    function drawRows(tableId, rows, empty) {
      const tbody = document.querySelector(`#${tableId} tbody`);
      const out = rows.map((r) => el("tr", { "data-child": r.id }, cell(String(r.id), "num"), cell(r.architecture, "arch"), cell(r.reason ?? String(r.reissued))));
      if (!out.length) out.push(el("tr", { class: "placeholder" }, el("td", { colspan: 3, text: empty })));
      tbody.replaceChildren(...out);
    }

    async function loadSummary() {
      const summary = await getJSON(api);
      body.dataset.downloads = summary.downloads ? "1" : "0";
      drawHead(summary);
      drawProgress(summary.progress);
      state.board = summary.leaderboard;
      drawBoard();
      drawRows("failures", summary.failures.slice().reverse(), "No child failed.");
      document.getElementById("failed-count").textContent = `(${summary.failed_count.toLocaleString("en-US")})`;
      drawRows("not-trained", summary.not_trained.slice().reverse(), "Every proposal was trained.");
      document.getElementById("not-trained-count").textContent = String(summary.not_trained.length);
      drawRows("in-flight", summary.in_flight.map((c) => ({ ...c, reason: String(c.reissued) })), "Nothing is training now.");
      return summary;
    }

    poll(async () => {
      if (state.stopped) return;
      try {
        const summary = await loadSummary();
        await Promise.all([loadChildren(), loadCurves(summary.last_id)]);
        body.dataset.loaded = "1";
      } catch (err) {
        if (err instanceof HttpError && err.status === 404) {
          const missing = document.getElementById("search-missing");
          missing.textContent = `There is no search with id ${JSON.stringify(sid)} on this controller. The searches page lists every search.`;
          missing.hidden = false;
          for (const section of document.querySelectorAll("main > section, main > .two")) section.hidden = true;
          state.stopped = true;
        }
        throw err;
      }
    });
  }

  const pages = { searches: searchesPage, search: searchPage, trainers: trainersPage };
  (pages[body.dataset.page] || (() => {}))();
})();
