"use strict";
// The pages of `nvcaffe serve`. Each page (body's data-page) is filled from the REST API under
// /api, so the pages show what the API says; an API error is shown in the page's banner.

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
const FINISHED = ["done", "failed", "aborted"];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

async function api(path, options = {}) {
  const response = await fetch(path, {credentials: "same-origin", ...options});
  const isJson = (response.headers.get("Content-Type") || "").includes("json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) throw new Error(isJson && body.error ? body.error : `${response.status} ${response.statusText}`);
  return body;
}

const post = (path, body) => api(path, body instanceof FormData ? {method: "POST", body} :
  {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});

function showError(error) {
  const box = $("#error");
  box.textContent = error.message || String(error);
  box.hidden = false;
}

// fn, with any error it throws shown in the banner (and the banner cleared when it starts).
const guarded = (fn) => async (...args) => {
  try { $("#error").hidden = true; return await fn(...args); } catch (error) { showError(error); }
};

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const row = (...cells) => element("tr", {}, ...cells.map((c) => element("td", {}, c)));
const fillTable = (table, rows) => $("tbody", table).replaceChildren(...rows);
const facts = (table, pairs) => table.replaceChildren(...pairs.map(([k, v]) => element("tr", {}, element("th", {}, k), element("td", {}, String(v)))));

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

const number = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(Number(v).toPrecision(digits)).toString());
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
const statusBadge = (status, extra = "") => element("span", {class: `status ${status}`}, status + extra);

// -- home ------------------------------------------------------------------------------------
async function home() {
  async function refresh() {
    const [datasets, jobs] = await Promise.all([api("/api/datasets"), api("/api/jobs")]);
    fillTable($("#datasets"), datasets.map((d) => row(
      element("a", {href: `/datasets/${d.id}`}, d.name),
      statusBadge(d.status, d.status === "running" ? ` ${Math.round(d.progress * 100)}%` : ""),
      `${d.counts.train.reduce((a, b) => a + b, 0)} / ${d.counts.val.reduce((a, b) => a + b, 0)}`,
      String(d.labels.length), `${d.width}×${d.height} ${d.color}`, when(d.created))));
    fillTable($("#jobs"), jobs.map((j) => row(
      element("a", {href: `/jobs/${j.id}`}, j.name), j.network, j.dataset_name || "–", statusBadge(j.status),
      `${j.iter} / ${j.max_iter}`, duration(j.elapsed), duration(j.eta),
      ["queued", "running"].includes(j.status) ?
        element("button", {type: "button", onclick: guarded(async () => { await post(`/api/jobs/${j.id}/abort`); await refresh(); })}, "Abort") : "")));
  }
  await refresh();
  setInterval(guarded(refresh), 2000);
}

// -- datasets --------------------------------------------------------------------------------
function newDataset() {
  $("#dataset-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const form = event.target, data = new FormData(form), source = data.get("source");
    for (const other of ["folder", "list_file", "zip"]) if (other !== source) data.delete(other);
    data.delete("source");
    const {id} = await post("/api/datasets", data);
    location.href = `/datasets/${id}`;
  }));
}

// The explorer of an LMDB: label counts, a page of thumbnails, paging and a label filter.
// url(page, label) gives the API address of a page.
function explorer(root, url, labelNames = []) {
  let page = 0, label = "";
  const name = (k) => labelNames[k] !== undefined ? `${k} ${labelNames[k]}` : String(k);
  const load = guarded(async () => {
    const result = await api(url(page, label));
    fillTable($(".label-counts", root), Object.entries(result.label_counts).map(([k, n]) => row(name(k), String(n))));
    const filter = $(".label-filter", root);
    filter.replaceChildren(element("option", {value: ""}, "all"),
      ...Object.keys(result.label_counts).map((k) => element("option", {value: k, selected: k === label}, name(k))));
    $(".thumbnails", root).replaceChildren(...result.items.map((item) => element("figure", {class: "thumbnail"},
      element("img", {src: item.image, alt: item.key, title: item.key}), element("figcaption", {}, name(item.label)))));
    $(".page-info", root).textContent = `page ${result.page + 1} of ${Math.max(result.pages, 1)} (${result.matching} records)`;
    $(".previous", root).disabled = page === 0;
    $(".next", root).disabled = page + 1 >= result.pages;
  });
  $(".previous", root).onclick = () => { page -= 1; load(); };
  $(".next", root).onclick = () => { page += 1; load(); };
  $(".label-filter", root).onchange = (event) => { label = event.target.value; page = 0; load(); };
  return load;
}

async function dataset() {
  const id = document.body.dataset.dataset;
  let timer = null;
  const refresh = guarded(async () => {
    const d = await api(`/api/datasets/${id}`);
    $("#dataset-name").textContent = d.name;
    $("#dataset-status").replaceChildren(statusBadge(d.status), ` ${d.step} ${Math.round(d.progress * 100)}%`,
      d.message ? element("span", {class: "message"}, ` ${d.message}`) : "");
    $("#dataset-progress").value = d.progress;
    const count = (split) => d.counts[split].reduce((a, b) => a + b, 0);
    facts($("#dataset-info"), [["Source", d.source], ["Classes", d.labels.join(", ")],
      ["Training images", count("train")], ["Validation images", `${count("val")} (${d.val_percent}%)`],
      ["Size", `${d.width}×${d.height}, ${d.resize_mode}, ${d.color}, ${d.encoding}`],
      ["Databases", Object.values(d.databases).map((db) => `${db.path} (${db.records})`).join("; ") || "–"],
      ["Mean image", d.mean_file || "–"], ["Build time", duration(d.elapsed)]]);
    if (FINISHED.includes(d.status)) {
      clearInterval(timer);
      if (d.status === "done") {
        const browse = explorer($(".explorer"), (page, label) =>
          `/api/datasets/${id}/browse?split=${$("#split").value}&page=${page}&label=${label}`, d.labels);
        $("#split").onchange = browse;
        await browse();
      }
    }
  });
  await refresh();
  timer = setInterval(refresh, 1000);
}

function explore() {
  const form = $("#explore-form");
  const open = () => {
    const path = form.elements.path.value;
    history.replaceState(null, "", `/explore?path=${encodeURIComponent(path)}`);
    return explorer($(".explorer"), (page, label) =>
      `/api/browse?path=${encodeURIComponent(path)}&page=${page}&label=${label}`)();
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); open(); });
  if (form.elements.path.value) open();
}

// -- jobs ------------------------------------------------------------------------------------
async function newJob() {
  const [datasets, networks] = await Promise.all([api("/api/datasets"), api("/api/networks")]);
  const options = (select, values) => select.replaceChildren(...values.map(([v, text]) => element("option", {value: v}, text)));
  options($("#job-dataset"), datasets.filter((d) => d.status === "done").map((d) => [d.id, `${d.name} (${d.labels.length} classes, ${d.width}×${d.height})`]));
  options($("#job-network"), [...networks.standard.map((n) => [n, n]), ["custom", "custom (paste or upload)"]]);
  options($("#solver-type"), networks.solver_types.map((t) => [t, t]));
  options($("#lr-policy"), networks.lr_policies.map((p) => [p, p]));
  const showFields = () => {
    $("#custom-network").hidden = $("#job-network").value !== "custom";
    for (const label of $$("[data-policies]")) label.hidden = !label.dataset.policies.split(" ").includes($("#lr-policy").value);
  };
  $("#job-network").onchange = $("#lr-policy").onchange = showFields;
  showFields();
  $("#job-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    for (const label of $$("[data-policies]")) if (label.hidden) data.delete($("input", label).name);
    if (data.get("iterations")) data.delete("epochs");
    if (data.get("network") !== "custom") { data.delete("custom_network"); data.delete("custom_network_file"); }
    const {id} = await post("/api/jobs", data);
    location.href = `/jobs/${id}`;
  }));
  $("#solver-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const {id} = await post("/api/jobs", Object.fromEntries(new FormData(event.target)));
    location.href = `/jobs/${id}`;
  }));
}

// The series of a job's curves: [{label, points, accuracy?}] from its metrics rows.
function series(metrics, x = "iter") {
  const out = [];
  for (const phase of ["train", "test"]) {
    const rows = metrics[phase];
    const names = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !["iter", "seconds", "lr", "epoch"].includes(k));
    for (const name of names) {
      out.push({label: `${phase} ${name}`, accuracy: name.includes("accuracy"),
        points: rows.filter((r) => r[name] !== null && r[name] !== undefined).map((r) => ({x: r[x], y: r[name]}))});
    }
  }
  return out;
}

function lineChart(canvas, yTitle, withAccuracyAxis) {
  const scales = {x: {type: "linear", title: {display: true, text: "iteration"}}, y: {title: {display: true, text: yTitle}}};
  if (withAccuracyAxis) scales.accuracy = {position: "right", min: 0, max: 1, title: {display: true, text: "accuracy"}, grid: {drawOnChartArea: false}};
  return new Chart(canvas, {type: "line", data: {datasets: []},
    options: {animation: false, parsing: false, normalized: true, maintainAspectRatio: false, scales,
      elements: {point: {radius: 0}, line: {borderWidth: 2}}, interaction: {mode: "nearest", intersect: false}}});
}

function setSeries(chart, list) {
  chart.data.datasets = list.map((s, i) => ({label: s.label, data: s.points, borderColor: COLORS[i % COLORS.length],
    backgroundColor: COLORS[i % COLORS.length], yAxisID: s.accuracy && chart.options.scales.accuracy ? "accuracy" : "y"}));
  chart.update("none");
}

// The snapshot menu, newest first; it follows new snapshots unless an older one was chosen.
function snapshotSelect(job) {
  const select = $("#snapshot"), newest = String(job.snapshots[job.snapshots.length - 1] ?? "");
  const chosen = !select.value || select.value === select.dataset.newest ? newest : select.value;
  select.replaceChildren(...[...job.snapshots].reverse().map((s) => element("option", {value: s, selected: String(s) === chosen}, `iteration ${s}`)));
  select.dataset.newest = newest;
  return select;
}

async function job() {
  const id = document.body.dataset.job;
  const metricsChart = lineChart($("#metrics-chart"), "loss", true);
  const lrChart = lineChart($("#lr-chart"), "learning rate", false);
  let events = null, shown = null;
  function show(j) {
    $("#job-name").textContent = j.name;
    $("#job-status").replaceChildren(statusBadge(j.status));
    $("#job-progress").textContent = `iteration ${j.iter} of ${j.max_iter} · elapsed ${duration(j.elapsed)} · ETA ${duration(j.eta)}`;
    $("#job-message").textContent = j.message;
    facts($("#job-info"), [["Network", `${j.network} (${j.net_name})`], ["Dataset", j.dataset_name || "–"],
      ["Solver", `${j.solver_type}, base_lr ${number(j.base_lr)}, ${j.lr_policy}`], ["Batch size", j.batch_size || "–"],
      ["Device", j.gpus ? `GPU ${j.gpus}` : "CPU"], ["Created", when(j.created)], ["Folder", j.workdir]]);
    $("#abort").disabled = !["queued", "running"].includes(j.status);
    $("#resume").disabled = !["aborted", "failed"].includes(j.status);
    const select = snapshotSelect(j);
    $("#download").hidden = !j.snapshots.length;
    $("#download").href = `/api/jobs/${id}/download?snapshot=${select.value}`;
    const x = $("#x-axis").value;
    $("#x-axis").disabled = !j.iterations_per_epoch;  // a job from a solver file knows no epoch
    for (const chart of [metricsChart, lrChart]) chart.options.scales.x.title.text = x === "epoch" ? "epoch" : "iteration";
    setSeries(metricsChart, series(j.metrics, x));
    setSeries(lrChart, [{label: "learning rate", points: j.metrics.train.filter((r) => r.lr !== null).map((r) => ({x: r[x], y: r.lr}))}]);
    shown = j;
    if (FINISHED.includes(j.status) && events) { events.close(); events = null; }
  }
  function follow() {
    if (events) return;
    events = new EventSource(`/api/jobs/${id}/events`);
    events.addEventListener("job", (event) => show(JSON.parse(event.data)));
  }
  const first = await api(`/api/jobs/${id}`);
  show(first);
  if (!FINISHED.includes(first.status)) follow();
  $("#x-axis").onchange = () => show(shown);
  $("#snapshot").onchange = () => { $("#download").href = `/api/jobs/${id}/download?snapshot=${$("#snapshot").value}`; };
  $("#abort").onclick = guarded(async () => { await post(`/api/jobs/${id}/abort`); });
  $("#resume").onclick = guarded(async () => { await post(`/api/jobs/${id}/resume`); follow(); });
  $("#clone").onclick = guarded(async () => { const {id: copy} = await post(`/api/jobs/${id}/clone`); location.href = `/jobs/${copy}`; });
}

async function jobHeading(id) {
  const j = await api(`/api/jobs/${id}`);
  $("#job-name").textContent = `${$("#job-name").textContent}: ${j.name}`;
  snapshotSelect(j);
  if (!j.snapshots.length) throw new Error("the job has no snapshot yet: a model can be looked at once training wrote one");
  return j;
}

function probabilityBar(p) {
  return element("span", {class: "bar"}, element("span", {style: `width:${(p * 100).toFixed(1)}%`}), ` ${(p * 100).toFixed(2)}%`);
}

async function testModel() {
  const id = document.body.dataset.job;
  await jobHeading(id);
  $("#classify-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    data.append("snapshot", $("#snapshot").value);
    const result = await post(`/api/jobs/${id}/classify`, data);
    $("#classifications").replaceChildren(...result.results.map((r) => element("div", {class: "classification"},
      element("h3", {}, r.image),
      element("table", {class: "top"}, ...r.top.map((t) => row(t.label, probabilityBar(t.probability)))))));
  }));
  $("#evaluate").onclick = guarded(async () => {
    $("#evaluation-summary").textContent = "scoring…";
    const e = await post(`/api/jobs/${id}/evaluate`, {snapshot: $("#snapshot").value});
    $("#evaluation-summary").textContent = `accuracy ${(e.accuracy * 100).toFixed(2)}% on ${e.count} validation images (snapshot ${e.snapshot})`;
    const head = element("tr", {}, element("th", {}, "true \\ predicted"), ...e.labels.map((l) => element("th", {}, l)), element("th", {}, "accuracy"));
    const max = Math.max(1, ...e.matrix.flat());
    $("#confusion").replaceChildren(head, ...e.matrix.map((cells, k) => element("tr", {}, element("th", {}, e.labels[k]),
      ...cells.map((n) => element("td", {style: `background: rgba(31,119,180,${(n / max).toFixed(2)})`}, String(n))),
      element("td", {}, e.per_class[k] === null ? "–" : `${(e.per_class[k] * 100).toFixed(1)}%`))));
  });
}

function histogram(h) {
  const max = Math.max(1, ...h.counts), width = 120, height = 30, w = width / h.counts.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "histogram");
  h.counts.forEach((n, i) => {
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const barHeight = (n / max) * height;
    Object.entries({x: i * w, y: height - barHeight, width: w - 1, height: barHeight}).forEach(([k, v]) => bar.setAttribute(k, v));
    svg.append(bar);
  });
  return svg;
}

function blobView(title, b) {
  const s = b.stats;
  return element("div", {class: "blob"}, element("h3", {}, title),
    element("img", {src: b.image, alt: title, class: "pixelated",
      onload: (event) => event.target.classList.toggle("strip", event.target.naturalHeight * 4 < event.target.naturalWidth)}),
    element("p", {class: "stats"}, `shape ${b.shape.join("×")} · mean ${number(s.mean)} · std ${number(s.std)} · min ${number(s.min)} · max ${number(s.max)}`),
    histogram(s.histogram));
}

async function insideModel() {
  const id = document.body.dataset.job;
  const graph = await fetch(`/api/jobs/${id}/graph.svg`, {credentials: "same-origin"});
  if (graph.ok) $("#graph").replaceChildren(element("img", {src: URL.createObjectURL(await graph.blob()), alt: "the network"}));
  else $("#graph").replaceChildren(element("p", {class: "message"}, (await graph.json()).error));
  await jobHeading(id);
  const loadWeights = guarded(async () => {
    const w = await api(`/api/jobs/${id}/weights?snapshot=${$("#snapshot").value}`);
    $("#weights").replaceChildren(...w.layers.flatMap((layer) => layer.params.map((p, k) =>
      blobView(`${layer.layer} (${layer.type}) ${k === 0 ? "weights" : "biases"}`, p))));
  });
  $("#snapshot").onchange = loadWeights;
  await loadWeights();
  $("#activations-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    data.append("snapshot", $("#snapshot").value);
    const a = await post(`/api/jobs/${id}/activations`, data);
    $("#activations").replaceChildren(...a.blobs.map((b) => blobView(b.blob, b)));
  }));
}

// -- compare ---------------------------------------------------------------------------------
async function compare() {
  let sort = "created", order = "asc";
  const selected = new Set();
  const accuracyChart = lineChart($("#overlay-accuracy"), "test accuracy", false);
  const lossChart = lineChart($("#overlay-loss"), "train loss", false);
  const overlay = guarded(async () => {
    const chosen = await Promise.all([...selected].map((id) => api(`/api/jobs/${id}`)));
    const pick = (j, phase, test) => series(j.metrics).filter((s) => s.label.startsWith(phase) && test(s))[0];
    setSeries(accuracyChart, chosen.map((j) => ({label: j.name, points: (pick(j, "test", (s) => s.accuracy) || {points: []}).points})));
    setSeries(lossChart, chosen.map((j) => ({label: j.name, points: (pick(j, "train", (s) => s.label.includes("loss")) || {points: []}).points})));
  });
  const load = guarded(async () => {
    const rows = await api(`/api/compare?sort=${sort}&order=${order}`);
    if (!selected.size) rows.slice(0, COLORS.length).forEach((r) => selected.add(r.id));
    fillTable($("#comparison"), rows.map((r) => element("tr", {"data-job": r.id},
      element("td", {}, element("input", {type: "checkbox", checked: selected.has(r.id),
        onchange: (event) => { event.target.checked ? selected.add(r.id) : selected.delete(r.id); overlay(); }})),
      element("td", {}, element("a", {href: `/jobs/${r.id}`}, r.name)), element("td", {}, r.network),
      element("td", {}, r.dataset_name || "–"), element("td", {}, statusBadge(r.status)),
      element("td", {}, `${r.iter} / ${r.max_iter}`), element("td", {}, duration(r.elapsed)),
      element("td", {class: "accuracy"}, number(r.accuracy)), element("td", {}, number(r.test_loss)),
      element("td", {}, number(r.train_loss)))));
    for (const th of $$("th[data-sort]")) th.className = th.dataset.sort === sort ? `sorted ${order}` : "";
    await overlay();
  });
  for (const th of $$("th[data-sort]")) {
    th.onclick = () => { order = th.dataset.sort === sort && order === "asc" ? "desc" : "asc"; sort = th.dataset.sort; load(); };
  }
  await load();
}

const PAGES = {home, "dataset-new": newDataset, dataset, explore, "job-new": newJob, "job-training": job, "job-test": testModel,
  "job-inside": insideModel, compare};
document.addEventListener("DOMContentLoaded", () => { const page = PAGES[document.body.dataset.page]; if (page) guarded(page)(); });
