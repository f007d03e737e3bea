// The page of `fmnist serve`: plain JavaScript, no build step. Every answer comes from the JSON
// API (/v1/predict with include_input=true), so the page shows exactly what a script would get.
"use strict";

const PAGE_SIZE = 60;  // disagreement thumbnails per "Show more"
const PEN_WIDTH = 22;  // drawing stroke, in canvas pixels (the canvas is 280x280: 10x the input)
const state = { models: [], seq: 0, disagreeOffset: 0, disagreeLoaded: false, originalUrl: null };
const $ = (id) => document.getElementById(id);

function percent(p) { return (100 * p).toFixed(1) + "%"; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- models and the test-set features -------------------------------------------------------

async function loadModels() {
  const info = await getJson("/v1/models");
  state.models = info.models;
  $("model-list").textContent = info.models.map((m) => {
    const facts = [m.name === m.backend ? `run ${m.run}` : `${m.backend}, run ${m.run}`];
    if (m.test_accuracy != null) facts.push(`test accuracy ${percent(m.test_accuracy)}`);
    if (m.parameters != null) facts.push(`${m.parameters.toLocaleString("en")} parameters`);
    return `${m.name} (${facts.join(", ")})`;
  }).join(" · ");
  if (!info.test_images) {
    for (const el of document.querySelectorAll(".test-set-feature")) el.hidden = true;
    $("no-data-note").textContent = info.note;
    $("no-data-note").hidden = false;
  }
  document.body.dataset.ready = "true";
}

// ---- asking the API and showing the answer --------------------------------------------------

async function classify(blob, name, source, extra) {
  showError("");
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(blob);
  const form = new FormData();
  form.append("image", blob, name);
  let body;
  try {
    const response = await fetch("/v1/predict?include_input=true", { method: "POST", body: form });
    body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
  } catch (err) {
    showError(err.message);
    return;
  }
  render(body.images[0], source, extra || "");
}

function drawPreview(pixels) {
  const canvas = $("preview");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(28, 28);
  pixels.forEach((v, i) => {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  });
  ctx.putImageData(image, 0, 0);
}

function card(answer) {
  const model = state.models.find((m) => m.name === answer.model) || { backend: "", run: "" };
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.model = answer.model;
  const title = document.createElement("h3");
  title.textContent = `${answer.model} `;
  const backend = document.createElement("span");
  backend.className = "muted small";
  backend.textContent = model.name === model.backend ? model.run : `${model.backend}, ${model.run}`;
  title.append(backend);
  div.append(title);
  answer.top_k.forEach((r, rank) => {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.rank = rank;
    row.dataset.class = r.class;
    row.dataset.probability = r.probability;
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = r.class;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = "bar" + (rank === 0 ? " top" : "");
    bar.style.width = Math.max(0.5, 100 * r.probability) + "%";
    track.append(bar);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(r.probability);
    row.append(label, track, value);
    div.append(row);
  });
  return div;
}

function render(item, source, extra) {
  drawPreview(item.pixels);
  $("original").src = state.originalUrl;
  const how = item.input === "pass-through" ? "a 28x28 Fashion-MNIST-style image, passed through unchanged"
    : `${item.source_size[0]}x${item.source_size[1]}, converted as Fashion-MNIST was made`;
  $("source").textContent = `${item.name}: ${how}. ${extra}`.trim();
  const classes = item.predictions.map((a) => a.class);
  const verdict = $("verdict");
  verdict.className = item.agree ? "agree" : "disagree";
  verdict.textContent = item.predictions.length < 2 ? `The model says ${classes[0]}.`
    : item.agree ? `The ${item.predictions.length} models agree: ${classes[0]}.`
    : "The models disagree: " + item.predictions.map((a) => `${a.model} says ${a.class}`).join(", ") + ".";
  const cards = $("cards");
  cards.replaceChildren(...item.predictions.map(card));
  const result = $("result");
  result.hidden = false;
  $("placeholder").hidden = true;
  result.dataset.source = source;
  result.dataset.seq = String(++state.seq);
}

// ---- the three inputs -----------------------------------------------------------------------

function setUpUpload() {
  const input = $("upload");
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (file) classify(file, file.name, "upload");
    input.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) classify(file, file.name, "upload");
  });
}

function setUpDrawing() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  let drawing = false, drawn = false;
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); drawn = false; };
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  };
  const send = () => {
    if (!drawn) { showError("Draw something on the canvas first."); return; }
    canvas.toBlob((blob) => classify(blob, "drawing.png", "drawing"), "image/png");
  };
  clear();
  ctx.lineCap = ctx.lineJoin = "round";
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = PEN_WIDTH;
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y);
    ctx.stroke();
    drawn = true;
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = at(e);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  const end = () => { if (drawing) { drawing = false; send(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear-drawing").addEventListener("click", clear);
  $("classify-drawing").addEventListener("click", send);
}

async function showTestImage(index, label) {
  try {
    const response = await fetch(`/v1/test-images/${index}.png`);
    if (!response.ok) throw new Error((await response.json()).error);
    await classify(await response.blob(), `test image ${index}`, "test", `True class: ${label}.`);
  } catch (err) {
    showError(err.message);
  }
}

function setUpRandom() {
  $("random-test").addEventListener("click", async () => {
    try {
      const item = await getJson("/v1/test-images/random");
      await showTestImage(item.index, item.class);
    } catch (err) {
      showError(err.message);
    }
  });
}

// ---- the disagreement view ------------------------------------------------------------------

function cell(row) {
  const div = document.createElement("button");
  div.type = "button";
  div.className = "cell";
  div.dataset.index = row.index;
  div.title = `test image ${row.index}: open it`;
  const img = document.createElement("img");
  img.src = `/v1/test-images/${row.index}.png`;
  img.alt = `test image ${row.index}`;
  const truth = document.createElement("span");
  truth.className = "truth";
  truth.textContent = `#${row.index} ${row.class}`;
  div.append(img, truth);
  for (const p of row.predictions) {
    const line = document.createElement("span");
    line.className = p.correct ? "right" : "wrong";
    line.textContent = `${p.model}: ${p.class}`;
    div.append(line);
  }
  div.addEventListener("click", () => { switchView("try"); showTestImage(row.index, row.class); });
  return div;
}

async function loadDisagreements() {
  if (state.models.length < 2) {
    $("disagree-note").textContent = "Load two or more models (fmnist serve MODEL MODEL) to see where they disagree.";
    $("disagree-note").hidden = false;
    return;
  }
  $("disagree-summary").textContent = "Running every model on the 10,000 test images\u2026";
  try {
    const body = await getJson(`/v1/disagreements?limit=${PAGE_SIZE}&offset=${state.disagreeOffset}`);
    const accuracy = Object.entries(body.accuracy).map(([m, a]) => `${m} ${percent(a)}`).join(", ");
    state.disagreeOffset += body.disagreements.length;
    $("disagree-summary").textContent = `Test accuracy here: ${accuracy}. Same class on ` +
      `${body.same_class.toLocaleString("en")} of ${body.images.toLocaleString("en")} test images; ` +
      `they disagree on ${body.total.toLocaleString("en")} (showing ${state.disagreeOffset}). ` +
      "Green: right, red: wrong. Click one to open it.";
    $("disagree-grid").append(...body.disagreements.map(cell));
    $("more-disagreements").hidden = state.disagreeOffset >= body.total;
  } catch (err) {
    $("disagree-summary").textContent = err.message;
  }
}

function switchView(name) {
  for (const tab of document.querySelectorAll(".tab[data-view]")) tab.classList.toggle("active", tab.dataset.view === name);
  $("view-try").hidden = name !== "try";
  $("view-disagree").hidden = name !== "disagree";
  if (name === "disagree" && !state.disagreeLoaded) {
    state.disagreeLoaded = true;
    loadDisagreements();
  }
}

window.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab[data-view]")) tab.addEventListener("click", () => switchView(tab.dataset.view));
  $("more-disagreements").addEventListener("click", loadDisagreements);
  setUpUpload();
  setUpDrawing();
  setUpRandom();
  loadModels().catch((err) => showError(`cannot list the models: ${err.message}`));
});
