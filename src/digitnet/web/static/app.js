/* digitnet's page: plain JavaScript, canvas and SVG; it talks to the JSON API under /api.
 *
 * Draw: the pad's pixels go to /api/predict as you draw (one request in flight at a time);
 * the answer comes back with every layer's activations, drawn as the video's columns of
 * neurons. Learn: buttons drive /api/train/*, and server-sent events from
 * /api/train/events bring the cost and test accuracy as training goes. Look: the
 * confusion matrix and mistakes from /api/evaluate, and gradient descent on a formula
 * from /api/descent. Landscape: the cost on a slice through the weights from /api/landscape,
 * and the network at a clicked point of it from /api/landscape/point.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SEND_SIDE = 112; // the drawing is sent as 112x112 grey pixels (the server prepares it like MNIST)
  const BLUE = [88, 196, 221], RED = [252, 98, 85];

  const state = {
    info: null,
    net: null,          // /api/network: weights to draw
    netShape: "",       // layers the SVG was built for
    prediction: null,   // the last /api/predict answer
    hasInk: false,
    testIndex: null,    // a test image shown on the pad (predicted exactly, not redrawn)
    selected: null,     // index of the first-layer neuron shown in detail
    job: null,
    status: null,
    train: null,
    points: [], accuracy: [], epochs: [],
    weightsVersion: null,
    descent: { view: null, start: [1, 1], result: null },
  };

  // --- helpers ------------------------------------------------------------------------
  async function api(path, options = {}) {
    const init = { method: options.method || "GET", headers: {} };
    if (options.json !== undefined) {
      init.method = options.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  let toastTimer = null;
  function toast(message, kind = "error") {
    const t = $("toast");
    t.textContent = message;
    t.className = `toast ${kind === "info" ? "info" : ""}`;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === "info" ? 3500 : 7000);
  }

  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  const floats = (b64) => new Float32Array(bytes(b64).buffer);
  const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
  const num = (v) => Number(v).toLocaleString("en-US");
  const clamp01 = (v) => Math.max(0, Math.min(1, v));

  function svg(tag, attrs = {}, parent = null) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function greyImage(canvas, values, scale = 255) { // values: side*side numbers, 0..1 (or 0..255 with scale 1)
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, canvas.height);
    for (let i = 0; i < values.length; i++) {
      const g = Math.round(values[i] * scale);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function weightImage(canvas, w, offset, count) { // blue positive, red negative, scaled to the largest |w|
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, canvas.height);
    let max = 1e-9;
    for (let i = 0; i < count; i++) max = Math.max(max, Math.abs(w[offset + i]));
    for (let i = 0; i < count; i++) {
      const t = w[offset + i] / max;
      const c = t >= 0 ? BLUE : RED;
      const a = Math.abs(t);
      img.data[4 * i] = c[0] * a; img.data[4 * i + 1] = c[1] * a; img.data[4 * i + 2] = c[2] * a;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  // --- the drawing pad ----------------------------------------------------------------
  const pad = $("pad");
  const padCtx = pad.getContext("2d");
  const small = document.createElement("canvas");
  small.width = small.height = SEND_SIDE;
  const smallCtx = small.getContext("2d", { willReadFrequently: true });
  let drawing = false, last = null;

  function clearPad() {
    padCtx.fillStyle = "#000";
    padCtx.fillRect(0, 0, pad.width, pad.height);
    state.hasInk = false;
    state.testIndex = null;
    $("pad-note").textContent = "Draw a digit from 0 to 9 with the mouse, a pen or a finger.";
    showBlank();
  }

  function padPoint(event) {
    const r = pad.getBoundingClientRect();
    return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
  }

  function stroke(from, to) {
    padCtx.strokeStyle = "#fff";
    padCtx.fillStyle = "#fff";
    padCtx.lineWidth = 19;
    padCtx.lineCap = "round";
    padCtx.lineJoin = "round";
    padCtx.beginPath();
    if (from[0] === to[0] && from[1] === to[1]) { // a dot: a zero-length line draws nothing in some browsers
      padCtx.arc(from[0], from[1], padCtx.lineWidth / 2, 0, 2 * Math.PI);
      padCtx.fill();
      return;
    }
    padCtx.moveTo(from[0], from[1]);
    padCtx.lineTo(to[0], to[1]);
    padCtx.stroke();
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    if (state.testIndex !== null) { // drawing over a test image: it becomes a drawing
      state.testIndex = null;
      $("pad-note").textContent = "Drawing over the test digit.";
    }
    drawing = true;
    last = padPoint(e);
    stroke(last, last);
    state.hasInk = true;
    requestPredict();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = padPoint(e);
    stroke(last, p);
    last = p;
    requestPredict();
  });
  const stop = () => { if (drawing) { drawing = false; requestPredict(); } };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  $("clear").addEventListener("click", clearPad);

  function padPixels() {
    smallCtx.imageSmoothingEnabled = true;
    smallCtx.imageSmoothingQuality = "high";
    smallCtx.drawImage(pad, 0, 0, SEND_SIDE, SEND_SIDE);
    const d = smallCtx.getImageData(0, 0, SEND_SIDE, SEND_SIDE).data;
    const out = new Array(SEND_SIDE * SEND_SIDE);
    for (let i = 0; i < out.length; i++) out[i] = d[4 * i];
    return out;
  }

  async function showTestImage(index) {
    const t = await api(`/api/test-image${index === undefined ? "" : `?index=${index}`}`);
    const side = t.side;
    const tmp = document.createElement("canvas");
    tmp.width = tmp.height = side;
    greyImage(tmp, bytes(t.pixels), 1);
    padCtx.imageSmoothingEnabled = true;
    padCtx.drawImage(tmp, 0, 0, pad.width, pad.height);
    state.hasInk = true;
    state.testIndex = t.index;
    $("pad-note").textContent = `Test image #${t.index}: a ${t.label}. Draw on it to change it.`;
    requestPredict();
  }
  $("random-test").addEventListener("click", () => showTestImage().catch((e) => toast(e.message)));

  // --- predicting ---------------------------------------------------------------------
  let predictBusy = false, predictAgain = false;
  function requestPredict() {
    pad.dataset.pending = "1"; // "0" once the answer for the latest drawing is shown (tests wait for it)
    if (predictBusy) { predictAgain = true; return; }
    predictBusy = true;
    doPredict().finally(() => {
      predictBusy = false;
      if (predictAgain) { predictAgain = false; requestPredict(); } else pad.dataset.pending = "0";
    });
  }

  async function doPredict() {
    if (!state.hasInk) { showBlank(); return; }
    const body = state.testIndex !== null ? { test_index: state.testIndex }
      : { width: SEND_SIDE, height: SEND_SIDE, pixels: padPixels() };
    try {
      showPrediction(await api("/api/predict", { json: body }));
    } catch (e) {
      if (e.status === 400 && /blank/i.test(e.message)) showBlank();
      else toast(e.message);
    }
  }

  function showBlank() {
    state.prediction = null;
    const a = $("answer");
    a.textContent = "?";
    a.dataset.digit = "";
    a.classList.add("unsure");
    $("answer-note").textContent = "its answer";
    greyImage($("prepared"), new Float32Array(784));
    renderBars(null);
    updateNetworkSvg();
  }

  function showPrediction(r) {
    state.prediction = r;
    greyImage($("prepared"), r.seen.length === 784 ? r.seen : r.input);
    const a = $("answer");
    a.textContent = r.label;
    a.dataset.digit = String(r.digit);
    const top = r.outputs[r.digit];
    a.classList.toggle("unsure", top < 0.5);
    $("answer-note").textContent = r.true_label === null ? `its answer (${top.toFixed(2)})`
      : r.true_label === r.digit ? "its answer: right" : `its answer: wrong, it is a ${r.true_label}`;
    renderBars(r.outputs, r.digit);
    updateNetworkSvg();
  }

  function renderBars(outputs, best) {
    const bars = $("bars");
    if (!bars.childElementCount) {
      for (let d = 0; d < 10; d++) {
        const row = document.createElement("div");
        row.className = "bar";
        row.dataset.digit = String(d);
        row.innerHTML = `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
        bars.appendChild(row);
      }
    }
    [...bars.children].forEach((row, d) => {
      const v = outputs ? outputs[d] : 0;
      row.querySelector(".fill").style.width = `${(100 * clamp01(v)).toFixed(1)}%`;
      row.querySelector(".value").textContent = outputs ? v.toFixed(2) : "";
      row.classList.toggle("best", outputs !== null && d === best);
    });
  }

  // --- the network's columns of neurons -------------------------------------------------
  const netSvg = $("net-svg");
  const MAX_SHOWN = 32; // neurons drawn per column
  let layout = null;

  function buildNetworkSvg() {
    const layers = state.net.layers;
    const about = state.net.describe;
    const conv = about.features.filter((f) => f.kind === "conv" || f.kind === "pool");
    netSvg.replaceChildren();
    const W = 640, H = 400, top = 22, bottom = 22;
    const columns = layers.length - 1;
    const x0 = conv.length ? 330 : 200, x1 = 560;
    const cols = [];
    for (let c = 0; c < columns; c++) {
      const n = layers[c + 1], shown = Math.min(n, MAX_SHOWN);
      const x = columns === 1 ? (x0 + x1) / 2 : x0 + (x1 - x0) * c / (columns - 1);
      const gap = Math.min(34, (H - top - bottom) / shown);
      const r = Math.max(2.5, Math.min(11, gap * 0.38));
      const y0 = H / 2 - gap * (shown - 1) / 2;
      cols.push({ n, shown, x, r, ys: Array.from({ length: shown }, (_, i) => y0 + i * gap) });
    }
    const edges = svg("g", { class: "edges" }, netSvg);
    const fan = svg("g", { class: "fan" }, netSvg);
    // The input: the 28x28 picture the network sees, its 784 pixels feeding the first column.
    const img = svg("image", { x: 20, y: H / 2 - 60, width: 120, height: 120, preserveAspectRatio: "none" }, netSvg);
    img.style.imageRendering = "pixelated";
    svg("rect", { x: 20, y: H / 2 - 60, width: 120, height: 120, fill: "none", stroke: "#3a4656" }, netSvg);
    svg("text", { x: 80, y: H / 2 + 80, "text-anchor": "middle" }, netSvg).textContent = `${layers[0]} inputs`;
    const first = cols[0];
    let fanX = 140;
    if (conv.length) { // conv and pool layers between the pixels and the first dense layer: a box of their names
      const bh = 34 + 20 * conv.length, by = H / 2 - bh / 2;
      svg("rect", { x: 168, y: by, width: 124, height: bh, rx: 8, class: "features" }, netSvg);
      conv.forEach((f, k) => {
        svg("text", { x: 230, y: by + 22 + 20 * k, "text-anchor": "middle", class: "feature" }, netSvg).textContent = f.text;
      });
      svg("text", { x: 230, y: by + bh - 10, "text-anchor": "middle" }, netSvg).textContent = `${num(about.dense_inputs)} features`;
      for (const y of [H / 2 - 30, H / 2, H / 2 + 30]) {
        svg("line", { x1: 140, y1: y, x2: 168, y2: y, stroke: "#8b98a9", "stroke-opacity": 0.5 }, fan);
      }
      fanX = 292;
    }
    for (let k = 0; k < 7; k++) {
      const ys = H / 2 - 54 + k * 18;
      for (const y of first.ys) {
        svg("line", { x1: fanX, y1: ys, x2: first.x - first.r, y2: y, stroke: "#8b98a9", "stroke-opacity": 0.05 }, fan);
      }
    }
    const edgeEls = [];
    for (let c = 1; c < columns; c++) {
      const a = cols[c - 1], b = cols[c], list = [];
      for (let j = 0; j < b.shown; j++) {
        for (let i = 0; i < a.shown; i++) {
          list.push(svg("line", { x1: a.x + a.r, y1: a.ys[i], x2: b.x - b.r, y2: b.ys[j], "stroke-width": 1 }, edges));
        }
      }
      edgeEls.push(list);
    }
    const neuronEls = cols.map((col, c) => col.ys.map((y, i) => {
      const el = svg("circle", { cx: col.x, cy: y, r: col.r, class: "neuron", fill: "#000" }, netSvg);
      el.dataset.layer = String(c);
      el.dataset.index = String(i);
      if (c === 0 && state.net.first.side) { // its weights on the pixels make a picture
        el.classList.add("clickable");
        el.addEventListener("click", () => selectNeuron(i));
        svg("title", {}, el).textContent = `Hidden neuron ${i + 1}: click to see its weights`;
      }
      return el;
    }));
    cols.forEach((col, c) => {
      const label = c === columns - 1 ? "output" : `hidden ${c + 1}`;
      svg("text", { x: col.x, y: 14, "text-anchor": "middle" }, netSvg).textContent = label;
      if (col.n > col.shown) {
        svg("text", { x: col.x, y: H - 4, "text-anchor": "middle" }, netSvg).textContent = `+${col.n - col.shown} more`;
      }
    });
    const out = cols[columns - 1];
    const outLabels = out.ys.map((y, i) => {
      const t = svg("text", { x: out.x + out.r + 10, y: y + 5, class: "out-label" }, netSvg);
      t.textContent = state.info ? state.info.data.classes[i] : String(i);
      return t;
    });
    layout = { cols, edgeEls, neuronEls, outLabels, img };
    state.netShape = about.text;
    const shape = conv.length
      ? [String(layers[0]), ...conv.map((f) => f.text), ...layers.slice(1).map(String)].join(" → ")
      : layers.join("-");
    $("net-shape").textContent = `${shape} · ${num(about.n_params)} weights and biases`;
  }

  function shade(a, act) { // an activation -> 0..1 brightness, as the video draws it
    if (act === "tanh") return clamp01((a + 1) / 2);
    return clamp01(a);
  }

  function updateNetworkSvg() {
    if (!layout || !state.net) return;
    const r = state.prediction;
    const acts = r ? r.activations : null;
    const names = state.net.layers.slice(1).map((_, c, arr) => (c === arr.length - 1 ? state.net.output_activation : state.net.activation));
    const bright = layout.cols.map((col, c) => {
      if (!acts) return col.ys.map(() => 0);
      const a = acts[c].slice(0, col.shown);
      if (names[c] === "relu" || names[c] === "identity") {
        const m = Math.max(1e-9, ...a.map(Math.abs));
        return a.map((v) => clamp01(v / m));
      }
      return a.map((v) => shade(v, names[c]));
    });
    layout.neuronEls.forEach((els, c) => els.forEach((el, i) => {
      const g = Math.round(255 * bright[c][i]);
      el.setAttribute("fill", `rgb(${g},${g},${g})`);
    }));
    const best = r ? r.digit : -1;
    layout.outLabels.forEach((t, i) => t.classList.toggle("best", i === best));
    layout.img.setAttribute("href", r ? $("prepared").toDataURL() : "");
    // Edges: blue for positive weights, red for negative, brighter where the neuron they start from is lit.
    state.net.deeper.forEach((layer, k) => {
      const els = layout.edgeEls[k];
      if (!els) return;
      if (!layer.weights) { els.forEach((e) => e.setAttribute("stroke-opacity", 0)); return; }
      const w = layer._w || (layer._w = floats(layer.weights));
      const nIn = layer.shape[1], a = layout.cols[k], b = layout.cols[k + 1];
      let max = 1e-9;
      for (let i = 0; i < w.length; i++) max = Math.max(max, Math.abs(w[i]));
      let e = 0;
      for (let j = 0; j < b.shown; j++) {
        for (let i = 0; i < a.shown; i++, e++) {
          const v = w[j * nIn + i] / max;
          const lit = acts ? 0.12 + 0.88 * bright[k][i] : 0.35;
          const el = els[e];
          el.setAttribute("stroke", v >= 0 ? "#58c4dd" : "#fc6255");
          el.setAttribute("stroke-opacity", (Math.abs(v) * lit * 0.9).toFixed(3));
        }
      }
    });
  }

  function selectNeuron(i) {
    state.selected = i;
    showNeuron();
  }

  function showNeuron() {
    const i = state.selected;
    const first = state.net && state.net.first;
    document.querySelectorAll("#net-svg .neuron.selected, #weight-grid canvas.selected").forEach((el) => el.classList.remove("selected"));
    if (!first) return;
    if (!first.side) {
      const f = state.net.describe.filters;
      $("neuron-text").textContent = `Its first dense layer sees the ${num(state.net.describe.dense_inputs)} features that `
        + "the conv and pool layers compute, not the pixels, so its weights make no picture. "
        + (f ? `Its first conv layer's ${f.count} filters of ${f.side}×${f.side} are under Learn.` : "");
      $("neuron-canvas").hidden = true;
      return;
    }
    $("neuron-canvas").hidden = false;
    if (i === null) {
      $("neuron-text").textContent = `Click a neuron of the first hidden layer to see the ${first.side * first.side} weights it gives the pixels.`;
      return;
    }
    if (i >= first.shown) return;
    const w = first._w || (first._w = floats(first.weights));
    const side = first.side;
    const c = $("neuron-canvas");
    c.width = c.height = side;
    weightImage(c, w, i * side * side, side * side);
    const a = state.prediction ? state.prediction.activations[0][i] : null;
    $("neuron-text").textContent = `Hidden neuron ${i + 1} of ${first.neurons}: its ${side * side} incoming weights `
      + `(blue pixels excite it, red ones inhibit it), bias ${first.biases[i].toFixed(2)}`
      + (a === null ? "." : `, activation now ${a.toFixed(2)}.`);
    if (layout) layout.neuronEls[0][i] && layout.neuronEls[0][i].classList.add("selected");
    const cell = $("weight-grid").children[i];
    if (cell) cell.classList.add("selected");
  }

  function renderWeightGrid() {
    const first = state.net.first;
    const filters = state.net.describe.filters;
    const grid = $("weight-grid");
    grid.dataset.kind = first.side ? "neurons" : filters ? "filters" : "none";
    if (grid.dataset.kind === "none") {
      $("weights-title").textContent = "First-layer weights";
      grid.replaceChildren();
      grid.textContent = "The first layer's weights are not a square image.";
      return;
    }
    const conv = grid.dataset.kind === "filters";
    $("weights-title").textContent = conv ? `First conv layer's filters (${filters.side}×${filters.side})` : "First-layer weights";
    $("weights-what").textContent = conv ? "the strokes each filter looks for, anywhere in the image" : "what each neuron looks for";
    const side = conv ? filters.side : first.side;
    const count = conv ? Math.min(filters.count, 64) : first.shown;
    const w = conv ? filters.weights : first._w || (first._w = floats(first.weights));
    if (grid.firstChild && grid.firstChild.nodeType !== 1) grid.replaceChildren();
    while (grid.childElementCount > count) grid.lastChild.remove();
    for (let i = 0; i < count; i++) {
      let c = grid.children[i];
      if (!c) {
        c = document.createElement("canvas");
        c.addEventListener("click", () => {
          if (grid.dataset.kind !== "neurons") return;
          selectNeuron(i);
          document.getElementById("draw").scrollIntoView();
        });
        grid.appendChild(c);
      }
      c.width = c.height = side;
      c.title = conv ? `Filter ${i + 1} of the first conv layer` : `Hidden neuron ${i + 1}`;
      c.classList.toggle("filter", conv);
      weightImage(c, w, i * side * side, side * side);
    }
  }

  async function refreshNetwork() {
    const net = await api("/api/network");
    state.net = net;
    if (net.describe.text !== state.netShape) {
      state.selected = null;
      buildNetworkSvg();
    }
    renderWeightGrid();
    showNeuron();
    updateNetworkSvg();
    $("net-shape").dataset.version = String(net.weights_version); // tests wait for the weights they expect
  }

  let netTimer = null, netPending = false;
  function scheduleNetworkRefresh() { // at most twice a second while training
    if (netTimer) { netPending = true; return; }
    refreshNetwork().then(() => { if (state.hasInk) requestPredict(); }).catch((e) => toast(e.message));
    netTimer = setTimeout(() => {
      netTimer = null;
      if (netPending) { netPending = false; scheduleNetworkRefresh(); }
    }, 500);
  }

  // --- learning -----------------------------------------------------------------------
  function fillSelect(el, values, selected) {
    el.replaceChildren(...values.map((v) => {
      const o = document.createElement("option");
      o.value = o.textContent = v;
      return o;
    }));
    if (selected !== undefined) el.value = selected;
  }

  function showConfig(s) {
    $("hidden").value = s.network.layers.slice(1, -1).join(",");
    for (const k of ["activation", "output_activation", "cost"]) $(k).value = s.network[k];
    for (const k of ["optimizer", "eta", "batch_size", "epochs", "seed"]) $(k).value = s.train[k];
    $("train_size").value = s.train_size;
  }

  $("preset").addEventListener("change", () => {
    const p = state.info.presets[$("preset").value];
    showConfig({ network: p.network, train: p.train, train_size: state.info.data.train });
  });

  // --- not losing work ------------------------------------------------------------------
  // What the current network has learnt, in words: "trained for 2 epochs and 31 mini-batches, 94.8% on the test digits".
  function trainedWords(d) {
    const parts = [];
    if (d.epoch) parts.push(`${d.epoch} epoch${d.epoch === 1 ? "" : "s"}`);
    if (d.batch_in_epoch) parts.push(`${num(d.batch_in_epoch)} mini-batch${d.batch_in_epoch === 1 ? "" : "es"}`);
    return `trained for ${parts.join(" and ") || "nothing"}, ${pct(d.test_accuracy)} on the test digits`;
  }

  // Ask before replacing a network with training that no model file holds. True: go ahead.
  function mayDiscard(action) {
    const d = state.train;
    if (!d || !d.unsaved) return true;
    return window.confirm(`${action}?\n\nThe current network (${trainedWords(d)}) is not saved, and its training `
      + "will be lost. Press Cancel and use “Save as” in Learn to keep it.");
  }

  function confirmReset() {
    const d = state.train;
    if (!d || (!d.batch && !d.epoch)) return true; // nothing trained: nothing to lose
    const kept = d.unsaved ? "That training is not saved: it will be lost."
      : d.model ? `The model “${d.model}” stays in the model folder; load it again from the Model menu.` : "";
    return window.confirm(`Reset to the random initial weights?\n\nThe network (${trainedWords(d)}) forgets its `
      + `training. ${kept}\n\nDraw reads digits with this same network, so it will read with the untrained one.`);
  }

  // Draw reads with the network that Learn trains: say which one that is now.
  function renderDrawNet(d) {
    const el = $("draw-net");
    const who = d.model ? `the model “${d.model}”` : "the unsaved network";
    el.textContent = d.batch || d.epoch
      ? `Reading with ${who} from Learn: ${trainedWords(d)}${d.unsaved && d.model ? " (changed since it was saved)" : ""}.`
      : `Reading with ${who} from Learn, untrained (random initial weights): its answers are guesses until you train it or load a trained model.`;
    el.classList.toggle("warn", !d.batch && !d.epoch);
  }

  $("config-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!mayDiscard("Set up a new network")) return;
    const body = {
      preset: $("preset").value,
      hidden: $("hidden").value,
      activation: $("activation").value,
      output_activation: $("output_activation").value,
      cost: $("cost").value,
      optimizer: $("optimizer").value,
      eta: Number($("eta").value),
      batch_size: Number($("batch_size").value),
      epochs: Number($("epochs").value),
      seed: Number($("seed").value),
      train_size: Number($("train_size").value),
    };
    try {
      await api("/api/train/config", { json: body });
      toast("A new network with random weights: press ▶ Train.", "info");
    } catch (err) { toast(err.message); }
  });

  async function post(path, body = {}) {
    try { return await api(path, { json: body }); } catch (e) { toast(e.message); return null; }
  }
  $("train-run").addEventListener("click", () => {
    if (state.status === "running") post("/api/train/pause");
    else if (state.status === "done") post("/api/train/start", { more_epochs: 1 }); // a finished network trains on
    else post("/api/train/start");
  });
  $("train-step").addEventListener("click", () => post("/api/train/step"));
  $("train-epoch").addEventListener("click", () => post("/api/train/start", { until: "epoch" }));
  $("train-reset").addEventListener("click", () => { if (confirmReset()) post("/api/train/reset"); });

  function onProgress(d) {
    const wasRunning = state.status === "running";
    if (d.reset || d.job !== state.job) {
      state.points = []; state.accuracy = []; state.epochs = [];
      if (state.job !== null && d.job !== state.job) {
        showConfig(d); refreshModels().catch((e) => toast(e.message));
        landscapeClear("Another network: draw its landscape."); // an old map's points would mix two models
      }
      state.job = d.job;
    }
    state.points.push(...d.points);
    state.accuracy.push(...d.accuracy);
    state.epochs.push(...d.epoch_records);
    state.status = d.status;
    state.train = d;
    renderStatus(d);
    scheduleChart();
    if (d.weights_version !== state.weightsVersion) {
      state.weightsVersion = d.weights_version;
      scheduleNetworkRefresh();
      landscapeCheckVersion(d.weights_version);
    }
    if (wasRunning && d.status !== "running") { evaluate(); refreshModels(); }
  }

  function renderStatus(d) {
    const running = d.status === "running";
    const words = { ready: "Ready", running: "Training", paused: "Paused", done: "Done", diverged: "Diverged" };
    const parts = [
      `<b>${words[d.status] || d.status}</b>`,
      `epoch ${Math.min(d.epoch + (running || d.batch_in_epoch ? 1 : 0), d.epochs)} of ${d.epochs}`,
      `mini-batch ${num(d.batch_in_epoch)} of ${num(d.batches_per_epoch)}`,
      `cost ${d.cost === null ? "–" : d.cost.toFixed(4)}`,
      `test accuracy ${pct(d.test_accuracy)}`,
    ];
    const s = $("train-status");
    const note = d.message || (d.status === "done" ? "All epochs are done: ▶ trains one more epoch; Reset starts over." : "");
    s.innerHTML = parts.join(" · ") + (note ? `<br><span class="muted">${escapeHtml(note)}</span>` : "");
    s.dataset.status = d.status;
    s.dataset.version = String(d.weights_version);
    const run = $("train-run");
    run.textContent = running ? "❚❚ Pause" : d.status === "done" ? "▶ Train more" : "▶ Train";
    run.title = d.status === "done" ? "Train one more epoch, on from these weights" : "";
    const finished = d.status === "done" || d.status === "diverged";
    run.disabled = !running && d.status === "diverged";
    for (const id of ["train-step", "train-epoch"]) $(id).disabled = running || finished;
    for (const id of ["new-network", "save-model", "model-select"]) $(id).disabled = running;
    const badge = $("model-badge");
    badge.textContent = `${d.model || "unsaved"} · ${pct(d.test_accuracy)} test`;
    badge.classList.toggle("good", d.test_accuracy !== null && d.test_accuracy > 0.9);
    badge.title = badge.textContent;
    renderDrawNet(d);
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  let chartQueued = false;
  function scheduleChart() {
    if (chartQueued) return;
    chartQueued = true;
    requestAnimationFrame(() => { chartQueued = false; drawChart(); });
  }

  function drawChart() {
    const chart = $("cost-chart");
    chart.replaceChildren();
    const W = 640, H = 260, L = 52, R = 52, T = 14, B = 34;
    const pts = state.points, acc = state.accuracy, d = state.train;
    chart.dataset.points = String(pts.length);
    chart.dataset.accuracy = String(acc.length);
    if (!d) return;
    const per = d.batches_per_epoch;
    const lastX = Math.max(pts.length ? pts[pts.length - 1][0] : 0, acc.length ? acc[acc.length - 1][0] : 0, d.batch);
    const xmax = Math.max(per, Math.ceil(lastX / per) * per);
    let ymax = 0;
    for (const p of pts) ymax = Math.max(ymax, p[1]);
    const tick = niceStep(ymax > 0 ? ymax * 1.02 / 4 : 0.25);
    ymax = 4 * tick;
    const X = (v) => L + (W - L - R) * v / xmax;
    const Yc = (v) => T + (H - T - B) * (1 - v / ymax);
    const Ya = (v) => T + (H - T - B) * (1 - v);
    for (let k = 0; k <= 4; k++) {
      const y = T + (H - T - B) * k / 4;
      svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid-line" }, chart);
      svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, chart).textContent = fmtTick(ymax * (1 - k / 4));
      svg("text", { x: W - R + 6, y: y + 4 }, chart).textContent = `${100 - 25 * k}%`;
    }
    const epochs = Math.round(xmax / per);
    const every = Math.max(1, Math.ceil(epochs / 10));
    for (let e = 0; e <= epochs; e += every) {
      const x = X(e * per);
      if (e > 0 && e < epochs) svg("line", { x1: x, x2: x, y1: T, y2: H - B, class: "epoch-line" }, chart);
      svg("text", { x, y: H - B + 15, "text-anchor": "middle" }, chart).textContent = String(e);
    }
    svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }, chart);
    svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, chart).textContent =
      `epochs (${num(per)} mini-batches of ${d.train.batch_size} each)`;
    svg("text", { x: 12, y: T + (H - T - B) / 2, transform: `rotate(-90 12 ${T + (H - T - B) / 2})`, "text-anchor": "middle", class: "axis-title" }, chart).textContent = "cost";
    svg("text", { x: W - 8, y: T + (H - T - B) / 2, transform: `rotate(90 ${W - 8} ${T + (H - T - B) / 2})`, "text-anchor": "middle", class: "axis-title" }, chart).textContent = "test accuracy";
    if (!pts.length && !acc.length) {
      svg("text", { x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, chart).textContent = "Press ▶ Train to start descending.";
      return;
    }
    if (pts.length) {
      svg("polyline", { class: "cost-line", points: pts.map((p) => `${X(p[0]).toFixed(1)},${Yc(p[1]).toFixed(1)}`).join(" ") }, chart);
    }
    if (acc.length) {
      svg("polyline", { class: "acc-line", points: acc.map((p) => `${X(p[0]).toFixed(1)},${Ya(p[1]).toFixed(1)}`).join(" ") }, chart);
      const lastA = acc[acc.length - 1];
      svg("circle", { cx: X(lastA[0]), cy: Ya(lastA[1]), r: 3.5, class: "acc-dot" }, chart);
    }
  }

  function niceStep(v) { // the smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k) at least v
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v * (1 - 1e-9)) return m * p;
    return 10 * p;
  }
  const fmtTick = (v) => (v === 0 ? "0" : String(+v.toPrecision(3)));

  function connectEvents() {
    const es = new EventSource("/api/train/events");
    es.addEventListener("progress", (ev) => onProgress(JSON.parse(ev.data)));
    // EventSource reconnects by itself when the stream ends or the server restarts.
  }

  // --- models ------------------------------------------------------------------------
  async function refreshModels() {
    const m = await api("/api/models");
    const select = $("model-select");
    const options = m.models.map((x) => x.name);
    fillSelect(select, m.current ? options : ["(unsaved network)", ...options]);
    select.value = m.current || "(unsaved network)";
    select.dataset.current = select.value;
  }

  $("model-select").addEventListener("change", async () => {
    const select = $("model-select");
    if (select.value === "(unsaved network)") return;
    if (!mayDiscard(`Switch to the model “${select.value}”`)) { select.value = select.dataset.current; return; }
    try {
      await api("/api/models/load", { json: { name: select.value } });
      landscapeClear(`The model “${select.value}”: draw its landscape.`);
      await refreshModels();
      evaluate();
      toast(`Loaded ${select.value}.`, "info");
    } catch (e) {
      select.value = select.dataset.current;
      toast(e.message);
    }
  });

  async function saveModel(overwrite = false) {
    const name = $("save-name").value.trim();
    if (!name) { toast("Type a name for the model first."); return; }
    try {
      const r = await api("/api/models/save", { json: { name, overwrite } });
      await refreshModels();
      toast(`Saved as ${r.file} in the model folder.`, "info");
    } catch (e) {
      if (e.status === 409 && /exists/.test(e.message) && !overwrite && window.confirm(`${e.message}\n\nOverwrite it?`)) {
        return saveModel(true);
      }
      toast(e.message);
    }
  }
  $("save-model").addEventListener("click", () => saveModel());

  $("save-drawing").addEventListener("click", async () => {
    if (!state.hasInk) { toast("Draw a digit first."); return; }
    try {
      const r = await api("/api/drawings", { json: { label: Number($("label-select").value), width: SEND_SIDE, height: SEND_SIDE, pixels: padPixels() } });
      toast(`Saved ${r.file}: ${r.count} drawing${r.count === 1 ? "" : "s"} of ${r.label} so far.`, "info");
    } catch (e) { toast(e.message); }
  });

  // --- evaluation --------------------------------------------------------------------
  async function evaluate() {
    try { renderEvaluation(await api("/api/evaluate")); } catch (e) { toast(e.message); }
  }
  $("evaluate").addEventListener("click", evaluate);

  function renderEvaluation(r) {
    $("eval-summary").innerHTML = `Test accuracy <b>${pct(r.accuracy)}</b>: ${num(r.n - r.wrong)} of ${num(r.n)} test digits right.`;
    const table = $("confusion");
    table.replaceChildren();
    const k = r.classes.length;
    const head = table.insertRow();
    const corner = document.createElement("th");
    corner.className = "corner";
    corner.textContent = "true↓ out→";
    head.appendChild(corner);
    for (const c of r.classes) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
    for (let i = 0; i < k; i++) {
      const row = table.insertRow();
      const th = document.createElement("th");
      th.textContent = r.classes[i];
      row.appendChild(th);
      const total = r.confusion[i].reduce((a, b) => a + b, 0) || 1;
      for (let j = 0; j < k; j++) {
        const v = r.confusion[i][j];
        const td = row.insertCell();
        td.textContent = String(v);
        if (!v) td.className = "zero";
        const share = v / total;
        const c = i === j ? BLUE : RED;
        const alpha = i === j ? 0.15 + 0.6 * share : Math.min(0.85, share * 6);
        if (v) td.style.background = `rgba(${c[0]},${c[1]},${c[2]},${alpha.toFixed(3)})`;
        td.title = `true ${r.classes[i]}, answered ${r.classes[j]}: ${v} (${(100 * share).toFixed(1)}% of the ${r.classes[i]}s)`;
      }
    }
    const gallery = $("gallery");
    gallery.replaceChildren();
    for (const m of r.misclassified) {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `Test image #${m.index}: a ${m.label}, read as ${m.predicted} (${m.confidence.toFixed(2)})`;
      const c = document.createElement("canvas");
      c.width = c.height = 28;
      greyImage(c, bytes(m.pixels), 1);
      const cap = document.createElement("span");
      cap.innerHTML = `${m.label} → <span class="wrong">${m.predicted}</span>`;
      b.append(c, cap);
      b.addEventListener("click", () => {
        showTestImage(m.index).catch((e) => toast(e.message));
        $("draw").scrollIntoView();
      });
      gallery.appendChild(b);
    }
    if (!r.misclassified.length) gallery.textContent = "No mistakes on the test set.";
  }

  // --- the gradient-descent playground -------------------------------------------------
  const contour = $("contour");
  const cctx = contour.getContext("2d");

  async function runDescent() {
    const d = state.descent;
    const body = {
      formula: $("formula").value,
      start: d.start,
      eta: Number($("descent-eta").value),
      steps: Number($("descent-steps").value),
      momentum: Number($("descent-momentum").value),
    };
    if (d.view) body.view = d.view;
    try {
      const r = await api("/api/descent", { json: body });
      d.result = r;
      d.view = r.view;
      d.formula = body.formula;
      drawDescent(r);
      describeDescent(r);
    } catch (e) {
      toast(e.message);
      if (e.body && typeof e.body.position === "number") {
        const f = $("formula");
        f.focus();
        f.setSelectionRange(e.body.position, e.body.position + 1);
      }
    }
  }

  $("descent-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("formula").value !== state.descent.formula) state.descent.view = null; // a new formula: a fresh view
    runDescent();
  });

  contour.addEventListener("click", (e) => {
    const d = state.descent;
    if (!d.view) return;
    if ($("formula").value !== d.formula) d.view = null;
    const r = contour.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    const v = d.view || d.result.view;
    const x = v[0] + fx * (v[1] - v[0]);
    const y = v[3] - fy * (v[3] - v[2]);
    d.start = [round4(x), round4(y)];
    runDescent();
  });
  const round4 = (v) => Math.round(v * 1e4) / 1e4;

  const STOPS = [[8, 14, 40], [22, 58, 99], [31, 111, 139], [88, 196, 221], [200, 230, 200], [255, 233, 168]];
  function colormap(t) {
    t = clamp01(t) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(t)), f = t - i;
    return STOPS[i].map((c, k) => c + (STOPS[i + 1][k] - c) * f);
  }

  // Colour by rank: the values that cut `sorted` (ascending) into n bands of equal count, and
  // `band(value)`, the band a value falls in (0 .. n - 1), by binary search over them.
  function rankBands(sorted, n) {
    const levels = [];
    for (let k = 1; k < n; k++) levels.push(sorted[Math.floor(k * (sorted.length - 1) / n)]);
    const band = (val) => { let lo = 0, hi = levels.length; while (lo < hi) { const m = (lo + hi) >> 1; if (levels[m] < val) lo = m + 1; else hi = m; } return lo; };
    return { levels, band };
  }

  function drawDescent(r) {
    const W = contour.width, H = contour.height, n = r.grid.n;
    const v = r.view;
    const toX = (x) => (x - v[0]) / (v[1] - v[0]) * (W - 1);
    const toY2 = (y) => (v[3] - y) / (v[3] - v[2]) * (H - 1);
    const g = r.grid.values;
    cctx.fillStyle = "#000";
    cctx.fillRect(0, 0, W, H);
    if (r.variables.length === 2) {
      const finite = g.filter((x) => x !== null).sort((a, b) => a - b);
      const LEVELS = 16;
      const { band: level } = rankBands(finite, LEVELS);
      const img = cctx.createImageData(W, H);
      const idx = new Float32Array(W * H);
      for (let py = 0; py < H; py++) {
        const fy = (H - 1 - py) / (H - 1) * (n - 1);
        const j = Math.min(n - 2, Math.floor(fy)), ty = fy - j;
        for (let px = 0; px < W; px++) {
          const fx = px / (W - 1) * (n - 1);
          const i = Math.min(n - 2, Math.floor(fx)), tx = fx - i;
          const a = g[j * n + i], b = g[j * n + i + 1], c = g[(j + 1) * n + i], d = g[(j + 1) * n + i + 1];
          const p = 4 * (py * W + px);
          if (a === null || b === null || c === null || d === null) {
            idx[py * W + px] = -1;
            img.data[p] = img.data[p + 1] = img.data[p + 2] = ((px + py) % 8 < 2) ? 70 : 25;
            img.data[p + 3] = 255;
            continue;
          }
          const val = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
          const l = level(val);
          idx[py * W + px] = l;
          const col = colormap(l / LEVELS);
          img.data[p] = col[0] * 0.85; img.data[p + 1] = col[1] * 0.85; img.data[p + 2] = col[2] * 0.85; img.data[p + 3] = 255;
        }
      }
      for (let py = 0; py < H - 1; py++) { // contour lines: where the level changes
        for (let px = 0; px < W - 1; px++) {
          const q = py * W + px;
          if (idx[q] >= 0 && (idx[q] !== idx[q + 1] || idx[q] !== idx[q + W])) {
            const p = 4 * q;
            img.data[p] = Math.min(255, img.data[p] + 60); img.data[p + 1] = Math.min(255, img.data[p + 1] + 60); img.data[p + 2] = Math.min(255, img.data[p + 2] + 60);
          }
        }
      }
      cctx.putImageData(img, 0, 0);
      drawAxes(toX, toY2, W, H);
      const path = r.path.filter((p) => p.every(Number.isFinite));
      drawPath(path.map((p) => [toX(p[0]), toY2(p[1])]));
    } else { // one variable: the curve C(x), and the path on it
      const ys = g.filter((x) => x !== null);
      let lo = Math.min(...ys), hi = Math.max(...ys);
      if (!(hi > lo)) { lo -= 1; hi += 1; }
      const pad = (hi - lo) * 0.08;
      lo -= pad; hi += pad;
      const toY1 = (c) => (hi - c) / (hi - lo) * (H - 1);
      drawAxes(toX, (y) => toY1(y), W, H, [lo, hi]);
      cctx.strokeStyle = "#58c4dd";
      cctx.lineWidth = 2;
      cctx.beginPath();
      let pen = false;
      for (let i = 0; i < n; i++) {
        if (g[i] === null) { pen = false; continue; }
        const x = i / (n - 1) * (W - 1), y = toY1(g[i]);
        if (pen) cctx.lineTo(x, y); else cctx.moveTo(x, y);
        pen = true;
      }
      cctx.stroke();
      drawPath(r.path.map((p, k) => [toX(p[0]), toY1(r.path_values[k])]).filter((p) => p.every(Number.isFinite)));
    }
    contour.dataset.points = String(r.path.length);
  }

  function drawAxes(toX, toY, W, H) {
    cctx.strokeStyle = "rgba(255,255,255,0.35)";
    cctx.lineWidth = 1;
    cctx.beginPath();
    const x0 = toX(0), y0 = toY(0);
    if (x0 >= 0 && x0 <= W) { cctx.moveTo(x0, 0); cctx.lineTo(x0, H); }
    if (y0 >= 0 && y0 <= H) { cctx.moveTo(0, y0); cctx.lineTo(W, y0); }
    cctx.stroke();
  }

  function drawPath(pts) {
    if (!pts.length) return;
    cctx.strokeStyle = "#fff";
    cctx.lineWidth = 2;
    cctx.beginPath();
    pts.forEach((p, i) => (i ? cctx.lineTo(p[0], p[1]) : cctx.moveTo(p[0], p[1])));
    cctx.stroke();
    cctx.fillStyle = "#fff";
    const step = Math.max(1, Math.floor(pts.length / 60));
    for (let i = 0; i < pts.length; i += step) { cctx.beginPath(); cctx.arc(pts[i][0], pts[i][1], 2.2, 0, 2 * Math.PI); cctx.fill(); }
    const dot = (p, color, r) => { cctx.fillStyle = color; cctx.strokeStyle = "#000"; cctx.lineWidth = 1.5; cctx.beginPath(); cctx.arc(p[0], p[1], r, 0, 2 * Math.PI); cctx.fill(); cctx.stroke(); };
    dot(pts[0], "#fff", 6);
    dot(pts[pts.length - 1], "#ffd166", 7);
  }

  function describeDescent(r) {
    const el = $("descent-result");
    el.dataset.stop = r.stop_reason;
    el.dataset.steps = String(r.steps);
    const fmt = (p) => `(${p.map((v) => (Number.isFinite(v) ? +v.toPrecision(4) : "–")).join(", ")})`;
    const vars = r.variables.join(", ");
    el.innerHTML = `<dl>
      <dt>C(${vars})</dt><dd>${escapeHtml(r.expression)}</dd>
      <dt>start</dt><dd>${fmt(r.path[0])}</dd>
      <dt>gradient there</dt><dd>${escapeHtml(r.gradient)}</dd>
      <dt>end</dt><dd>${fmt(r.final)}, C = ${Number.isFinite(r.value) ? +r.value.toPrecision(5) : "–"}</dd>
      <dt>outcome</dt><dd class="stop-${r.stop_reason}">${escapeHtml(r.explanation)}</dd>
    </dl>`;
    if (r.suggestion) {
      const p = document.createElement("p");
      p.className = "suggest";
      p.innerHTML = `Did you mean <code>${escapeHtml(r.suggestion)}</code>? `;
      const b = document.createElement("button");
      b.type = "button";
      b.className = "mini";
      b.textContent = "Try it";
      b.addEventListener("click", () => { $("formula").value = r.suggestion; state.descent.view = null; runDescent(); });
      p.appendChild(b);
      el.appendChild(p);
    }
  }

  // --- the cost landscape ---------------------------------------------------------------
  // /api/landscape: the cost on a slice W + αD1 + βD2 through the weights (rows by β), with
  // the training path when the directions are its principal ones; a click asks
  // /api/landscape/point for the network at that (α, β).
  const lcanvas = $("landscape-canvas");
  const lctx = lcanvas.getContext("2d");
  const land = { result: null, asked: null, point: null, busy: false, token: 0 };
  const LEVELS = 16; // colour bands, each an equal share of the map (the cost's rank, not its value)
  const landNote = $("landscape-note").innerHTML;

  function landscapeBody() {
    const body = { directions: $("landscape-directions").value, grid: Number($("landscape-grid").value),
      seed: Number($("landscape-seed").value || 0) };
    const range = $("landscape-range").value.trim();
    if (range !== "") body.range = Number(range);
    return body;
  }

  function landscapePlaceholder(text) { // the canvas before a map: words, not a black square
    const W = lcanvas.width, H = lcanvas.height;
    lctx.fillStyle = "#11161d"; lctx.fillRect(0, 0, W, H);
    lctx.fillStyle = "#9aa4b2"; lctx.font = "16px system-ui, sans-serif"; lctx.textAlign = "center"; lctx.textBaseline = "middle";
    const words = text.split(" "), lines = [];
    for (const w of words) {
      const last = lines[lines.length - 1];
      if (last !== undefined && lctx.measureText(`${last} ${w}`).width < W - 60) lines[lines.length - 1] = `${last} ${w}`;
      else lines.push(w);
    }
    lines.forEach((l, k) => lctx.fillText(l, W / 2, H / 2 + (k - (lines.length - 1) / 2) * 22));
    lctx.textAlign = "start"; lctx.textBaseline = "alphabetic";
    lcanvas.dataset.grid = "0";
    lcanvas.dataset.placeholder = text;
  }

  function landscapeClear(text = "Press “Draw the landscape” to compute the map.") { // no map: nothing of an old one stays
    land.result = null; land.point = null; land.token++;
    landscapePlaceholder(text);
    $("landscape-note").innerHTML = landNote;
    for (const id of ["landscape-summary", "landscape-point", "landscape-digits", "landscape-colors", "landscape-legend"]) $(id).replaceChildren();
    $("landscape-alpha").textContent = "";
    $("landscape-point").dataset.cost = "";
    $("landscape-colorbar").hidden = true;
  }

  async function drawLandscape() {
    if (land.busy) return;
    land.busy = true;
    const button = $("landscape-draw");
    button.disabled = true;
    $("landscape-summary").textContent = "Computing the cost over the slice…";
    const body = landscapeBody();
    const job = state.job, token = ++land.token;
    try {
      const r = await api("/api/landscape", { json: body });
      if (token !== land.token) return; // the view was cleared meanwhile (another model)
      if (state.job !== job) { landscapeClear("The model changed while the map was being drawn: draw it again."); return; }
      land.result = r;
      land.asked = { directions: body.directions, seed: body.seed };
      land.point = null;
      renderLandscape();
      describeLandscape(r);
      $("landscape-point").replaceChildren();
      $("landscape-point").dataset.cost = "";
      $("landscape-digits").replaceChildren();
      if (state.weightsVersion !== null && r.weights_version < state.weightsVersion) landscapeCheckVersion(state.weightsVersion);
    } catch (e) {
      landscapeClear(e.message); // e.g. a convolutional model: no old map stays under the message
      toast(e.message);
    } finally {
      land.busy = false;
      button.disabled = false;
    }
  }
  $("landscape-form").addEventListener("submit", (e) => { e.preventDefault(); drawLandscape(); });

  const fmt4 = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : String(+v.toPrecision(4)));
  // a number on a scale: what is a millionth of the scale or less is 0 (1.137e-13 is a rounding error)
  const fmtOn = (v, scale) => (Number.isFinite(v) && Number.isFinite(scale) && Math.abs(v) <= 1e-6 * Math.abs(scale) ? "0" : fmt4(v));
  const spans = (r) => [r.alphas[r.alphas.length - 1] - r.alphas[0], r.betas[r.betas.length - 1] - r.betas[0]];

  function costRange(r) {
    const finite = r.cost.flat().filter((c) => c !== null && Number.isFinite(c)).sort((x, y) => x - y);
    return { finite, lo: finite[0], hi: finite[finite.length - 1] };
  }
  const isFlat = ({ lo, hi }) => Number.isFinite(lo) && hi - lo <= 1e-9 * Math.max(1, Math.abs(hi));

  function describeLandscape(r) {
    const n = r.alphas.length;
    const [sa, sb] = spans(r);
    const range = costRange(r);
    $("landscape-note").textContent = r.note;
    $("landscape-summary").innerHTML = `${n}×${n} slice over ${num(r.n)} training images: cost at the trained weights `
      + `<b>${fmt4(r.center_cost)}</b>, lowest on the slice ${fmtOn(r.lowest.cost, range.hi)} at α ${fmtOn(r.lowest.alpha, sa)}, β ${fmtOn(r.lowest.beta, sb)}.`
      + (isFlat(range) ? " <b>The cost is the same everywhere on this slice: did the network learn?</b>" : "")
      + " Click anywhere to try those weights.";
    const ratio = sb > 0 ? sa / sb : 1;
    const scale = ratio > 1.25 ? ` (α spans ${fmt2(ratio)}× β)` : ratio < 0.8 ? ` (β spans ${fmt2(1 / ratio)}× α)` : "";
    $("landscape-alpha").textContent = `α ${fmtOn(r.alphas[0], sa)} … ${fmtOn(r.alphas[n - 1], sa)} across · β ${fmtOn(r.betas[0], sb)} … ${fmtOn(r.betas[r.betas.length - 1], sb)} up${scale}`;
    const legend = [
      '<span class="mark yellow">●</span> the trained weights',
      r.path ? '<span class="mark white">—</span> the training path, from the white dot (the initial weights), epoch by epoch' : "",
      '<span class="mark green">×</span> the lowest point of the slice',
      '<span class="mark red">◯</span> the point you clicked',
    ].filter(Boolean);
    $("landscape-legend").innerHTML = legend.map((l) => `<span>${l}</span>`).join("");
  }
  const fmt2 = (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1));

  function landscapeCheckVersion(version) { // the weights changed since the landscape was drawn
    const r = land.result;
    if (r && version !== r.weights_version && !r.stale) {
      r.stale = true;
      $("landscape-summary").insertAdjacentText("beforeend", " The weights have changed since: draw it again to see the new landscape.");
      $("landscape-summary").dataset.stale = "1";
    }
  }

  function landscapeView(r) { // [αmin, αmax, βmin, βmax] and canvas <-> (α, β)
    const a = r.alphas, b = r.betas;
    const v = [a[0], a[a.length - 1], b[0], b[b.length - 1]];
    const W = lcanvas.width, H = lcanvas.height;
    return {
      v,
      toX: (x) => (v[1] > v[0] ? (x - v[0]) / (v[1] - v[0]) : 0.5) * (W - 1),
      toY: (y) => (v[3] > v[2] ? (v[3] - y) / (v[3] - v[2]) : 0.5) * (H - 1),
    };
  }

  function niceTicks(lo, hi, count = 5) { // round values between lo and hi, about `count` of them
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : +t.toPrecision(6));
    return out;
  }

  function drawLandscapeAxes(r, toX, toY) { // tick marks with values: α along the bottom, β up the left side
    const W = lcanvas.width, H = lcanvas.height;
    lctx.font = "12px system-ui, sans-serif";
    lctx.lineWidth = 1;
    const label = (text, x, y, align, base) => {
      lctx.textAlign = align; lctx.textBaseline = base;
      lctx.strokeStyle = "rgba(0,0,0,0.85)"; lctx.lineWidth = 3; lctx.strokeText(text, x, y);
      lctx.fillStyle = "#fff"; lctx.fillText(text, x, y);
    };
    const [sa, sb] = spans(r);
    for (const t of niceTicks(r.alphas[0], r.alphas[r.alphas.length - 1])) {
      const x = toX(t);
      lctx.strokeStyle = "#fff"; lctx.lineWidth = 1;
      lctx.beginPath(); lctx.moveTo(x, H); lctx.lineTo(x, H - 6); lctx.stroke();
      if (x > 24 && x < W - 14) label(fmtOn(t, sa), x, H - 8, "center", "bottom");
    }
    for (const t of niceTicks(r.betas[0], r.betas[r.betas.length - 1])) {
      const y = toY(t);
      lctx.strokeStyle = "#fff"; lctx.lineWidth = 1;
      lctx.beginPath(); lctx.moveTo(0, y); lctx.lineTo(6, y); lctx.stroke();
      if (y > 28 && y < H - 24) label(fmtOn(t, sb), 8, y, "left", "middle");
    }
    label("α →", W - 6, H - 26, "right", "bottom");
    label("β ↑", 8, 4, "left", "top");
    lctx.textAlign = "start"; lctx.textBaseline = "alphabetic";
  }

  function drawColorbar(levels, lo, hi) { // the 16 bands, with the cost where each quarter begins
    const bar = $("landscape-colorbar");
    bar.hidden = false;
    const ctx = bar.getContext("2d");
    const W = bar.width, H = bar.height;
    ctx.clearRect(0, 0, W, H);
    for (let k = 0; k < LEVELS; k++) {
      const col = colormap(k / LEVELS);
      ctx.fillStyle = `rgb(${col[0] * 0.85},${col[1] * 0.85},${col[2] * 0.85})`;
      ctx.fillRect(Math.round(k * W / LEVELS), 0, Math.ceil(W / LEVELS), 12);
    }
    ctx.fillStyle = "#9aa4b2"; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "top";
    const scale = Math.max(Math.abs(hi), Math.abs(lo));
    const ticks = [[0, lo], [4, levels[3]], [8, levels[7]], [12, levels[11]], [16, hi]];
    for (const [k, v] of ticks) {
      const x = k * W / LEVELS;
      ctx.fillRect(Math.min(W - 1, x), 12, 1, 4);
      ctx.textAlign = k === 0 ? "left" : k === LEVELS ? "right" : "center";
      ctx.fillText(fmtOn(v, scale), x, 17);
    }
  }

  function renderLandscape() {
    const r = land.result;
    if (!r) return;
    const W = lcanvas.width, H = lcanvas.height;
    const na = r.alphas.length, nb = r.betas.length;
    const g = r.cost.flat().map((c) => (c === null || !Number.isFinite(c) ? null : c));
    const { finite, lo, hi } = costRange(r);
    const { levels, band: level } = rankBands(finite, LEVELS);
    const img = lctx.createImageData(W, H);
    const idx = new Int16Array(W * H);
    for (let py = 0; py < H; py++) {
      const fy = (H - 1 - py) / (H - 1) * (nb - 1); // β grows upwards; row 0 of the grid is the lowest β
      const j = Math.max(0, Math.min(nb - 2, Math.floor(fy))), ty = nb > 1 ? fy - j : 0;
      for (let px = 0; px < W; px++) {
        const fx = px / (W - 1) * (na - 1);
        const i = Math.max(0, Math.min(na - 2, Math.floor(fx))), tx = na > 1 ? fx - i : 0;
        const at = (jj, ii) => g[Math.min(jj, nb - 1) * na + Math.min(ii, na - 1)];
        const a = at(j, i), b = at(j, i + 1), c = at(j + 1, i), d = at(j + 1, i + 1);
        const p = 4 * (py * W + px);
        img.data[p + 3] = 255;
        if (a === null || b === null || c === null || d === null) {
          idx[py * W + px] = -1;
          img.data[p] = img.data[p + 1] = img.data[p + 2] = ((px + py) % 8 < 2) ? 70 : 25;
          continue;
        }
        const val = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
        const l = level(val);
        idx[py * W + px] = l;
        const col = colormap(l / LEVELS);
        img.data[p] = col[0] * 0.85; img.data[p + 1] = col[1] * 0.85; img.data[p + 2] = col[2] * 0.85;
      }
    }
    for (let py = 0; py < H - 1; py++) { // contour lines: where the level changes
      for (let px = 0; px < W - 1; px++) {
        const q = py * W + px;
        if (idx[q] >= 0 && (idx[q] !== idx[q + 1] || idx[q] !== idx[q + W])) {
          const p = 4 * q;
          for (let k = 0; k < 3; k++) img.data[p + k] = Math.min(255, img.data[p + k] + 60);
        }
      }
    }
    lctx.putImageData(img, 0, 0);
    const { toX, toY } = landscapeView(r);
    lctx.strokeStyle = "rgba(255,255,255,0.3)"; // the axes through the trained weights
    lctx.lineWidth = 1;
    lctx.beginPath();
    lctx.moveTo(toX(0), 0); lctx.lineTo(toX(0), H);
    lctx.moveTo(0, toY(0)); lctx.lineTo(W, toY(0));
    lctx.stroke();
    drawLandscapeAxes(r, toX, toY);
    const dot = (x, y, color, radius) => {
      lctx.fillStyle = color; lctx.strokeStyle = "#000"; lctx.lineWidth = 1.5;
      lctx.beginPath(); lctx.arc(x, y, radius, 0, 2 * Math.PI); lctx.fill(); lctx.stroke();
    };
    if (r.path && r.path.length) {
      const pts = r.path.map((p) => [toX(p[0]), toY(p[1])]);
      lctx.strokeStyle = "#fff";
      lctx.lineWidth = 2;
      lctx.beginPath();
      pts.forEach((p, k) => (k ? lctx.lineTo(p[0], p[1]) : lctx.moveTo(p[0], p[1])));
      lctx.stroke();
      pts.forEach((p) => dot(p[0], p[1], "#fff", 3));
      dot(pts[0][0], pts[0][1], "#fff", 6); // the initial weights
    }
    const low = r.lowest;
    const inside = (v, size) => Math.max(8, Math.min(size - 9, v)); // a mark at the edge stays whole
    lctx.lineWidth = 2; // the slice's lowest point: a green cross
    const lx = inside(toX(low.alpha), W), ly = inside(toY(low.beta), H);
    const cross = () => { lctx.beginPath(); lctx.moveTo(lx - 6, ly - 6); lctx.lineTo(lx + 6, ly + 6); lctx.moveTo(lx + 6, ly - 6); lctx.lineTo(lx - 6, ly + 6); lctx.stroke(); };
    lctx.strokeStyle = "#000"; lctx.lineWidth = 4; cross();
    lctx.strokeStyle = "#83c167"; lctx.lineWidth = 2; cross();
    dot(toX(0), toY(0), "#ffd166", 7); // the trained weights
    if (land.point) { // the clicked point: a ring
      const px = toX(land.point[0]), py = toY(land.point[1]);
      lctx.strokeStyle = "#000"; lctx.lineWidth = 4;
      lctx.beginPath(); lctx.arc(px, py, 9, 0, 2 * Math.PI); lctx.stroke();
      lctx.strokeStyle = "#fc6255"; lctx.lineWidth = 2.5;
      lctx.beginPath(); lctx.arc(px, py, 9, 0, 2 * Math.PI); lctx.stroke();
    }
    $("landscape-colors").textContent = isFlat({ lo, hi }) ? `colour: the cost, ${fmt4(lo)} everywhere`
      : `colour: the cost's rank, ${LEVELS} bands of equal area (each 1/${LEVELS} of the map); dark = low`;
    drawColorbar(levels, lo, hi);
    lcanvas.dataset.grid = String(na);
    lcanvas.dataset.placeholder = "";
  }

  lcanvas.addEventListener("click", async (e) => {
    const r = land.result;
    if (!r) { drawLandscape(); return; }
    const box = lcanvas.getBoundingClientRect();
    const fx = clamp01((e.clientX - box.left) / box.width), fy = clamp01((e.clientY - box.top) / box.height);
    const { v } = landscapeView(r);
    const alpha = +(v[0] + fx * (v[1] - v[0])).toPrecision(6), beta = +(v[3] - fy * (v[3] - v[2])).toPrecision(6);
    land.point = [alpha, beta];
    renderLandscape();
    const out = $("landscape-point");
    out.dataset.cost = "";
    try {
      const p = await api("/api/landscape/point", { json: { alpha, beta, ...land.asked, weights_version: r.weights_version } });
      if (land.result !== r || !land.point || land.point[0] !== alpha || land.point[1] !== beta) return; // a newer click or map
      showLandscapePoint(p, r);
    } catch (err) {
      if (err.status === 409) { // the map is of other weights: its points are no more
        landscapeCheckVersion(-1);
        land.point = null; renderLandscape();
        out.replaceChildren(); $("landscape-digits").replaceChildren();
      }
      toast(err.message);
    }
  });

  function showLandscapePoint(p, r) {
    const out = $("landscape-point");
    const diff = p.cost === null ? null : p.cost - r.center_cost;
    const [sa, sb] = spans(r);
    const { lo, hi } = costRange(r);
    const rel = diff === null ? "" : Math.abs(diff) <= 1e-9 * Math.max(Math.abs(r.center_cost), hi - lo) ? " (the trained network's own)"
      : ` <span class="${diff < 0 ? "better" : "worse"}">(${diff < 0 ? "" : "+"}${fmt4(diff)} from the trained weights)</span>`;
    out.innerHTML = `<dl>
      <dt>point</dt><dd>α ${fmtOn(p.alpha, sa)}, β ${fmtOn(p.beta, sb)}</dd>
      <dt>distance</dt><dd>${p.alpha === 0 && p.beta === 0 ? "0" : fmt4(p.distance)} from the trained weights in weight space (the Euclidean norm of the weight change)</dd>
      <dt>cost</dt><dd><b class="landscape-cost">${fmt4(p.cost)}</b>${rel} over ${num(p.n)} training images</dd>
      <dt>accuracy</dt><dd><b class="landscape-accuracy">${pct(p.accuracy)}</b> of ${num(p.n_test)} test digits right</dd>
    </dl>`;
    out.dataset.cost = String(p.cost);
    const digits = $("landscape-digits");
    digits.replaceChildren();
    for (const m of p.predictions) {
      const f = document.createElement("figure");
      const right = m.predicted === m.label;
      f.className = right ? "right" : "wrong";
      f.title = `Test digit #${m.index}, a ${m.label}: read as ${m.predicted} (${m.confidence.toFixed(2)})${right ? "" : ", wrong"}`;
      const c = document.createElement("canvas");
      c.width = c.height = 28;
      greyImage(c, bytes(m.pixels), 1);
      const cap = document.createElement("figcaption");
      cap.textContent = right ? `→ ${m.predicted}` : `→ ${m.predicted} ✗`;
      f.append(c, cap);
      digits.appendChild(f);
    }
  }

  // --- start --------------------------------------------------------------------------
  async function start() {
    clearPad();
    landscapeClear();
    fillSelect($("label-select"), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    try {
      const info = await api("/api/info");
      state.info = info;
      fillSelect($("preset"), Object.keys(info.presets));
      fillSelect($("activation"), info.choices.activation);
      fillSelect($("output_activation"), info.choices.output_activation);
      fillSelect($("cost"), info.choices.cost);
      fillSelect($("optimizer"), info.choices.optimizer);
      $("train_size").max = info.data.train;
      fillSelect($("label-select"), info.data.classes);
      if (!info.features.drawings) $("save-drawing").hidden = true;
      showConfig(info.state);
      await refreshModels();
      await refreshNetwork();
      connectEvents();
      evaluate();
      runDescent();
      document.body.dataset.ready = "1";
    } catch (e) {
      toast(`The app could not start: ${e.message}`);
    }
  }
  start();
})();
