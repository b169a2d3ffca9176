// sganon serve: the page. Plain JS, no external assets; talks only to this server's /api.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const state = {
  config: null,
  uploads: [],      // {id, name, kind, width, height, frames, run: status object | null}
  selected: null,   // the upload shown
  detections: null, // detections JSON of the shown run (photos)
};

// ---------------------------------------------------------------- helpers
async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `request failed (${response.status})`;
    throw new Error(message);
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text, stateName) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = stateName;
}

function currentOptions() {
  const truncationDefault = $("truncation-default").checked;
  return {
    preset: $("preset").value || null,
    truncation: truncationDefault ? null : Number($("truncation").value),
    seed: Math.max(0, Math.min(2147483647, Math.floor(Number($("seed").value) || 0))),
    verify: $("verify").checked,
  };
}

function setBanner(info) {
  const banner = $("banner");
  banner.replaceChildren();
  const strong = document.createElement("strong");
  if (info.realistic) {
    banner.className = "banner realistic";
    strong.textContent = `Realistic generator: ${info.generator}`;
    banner.append(strong, " — every person is replaced by a generated one.");
  } else {
    banner.className = "banner baseline";
    strong.textContent = `Baseline generator: ${info.generator}`;
    banner.append(strong, " — not realistic: persons are obscured, not replaced by new people.");
  }
  if (info.notice) {
    const why = document.createElement("span");
    why.className = "why";
    const guide = document.createElement("a");
    guide.href = "/guide/weights";
    guide.target = "_blank";
    guide.textContent = "weights guide";
    why.append(`${info.notice} See the `, guide, ".");
    banner.append(why);
  }
}

async function refreshBanner() {
  const preset = $("preset").value;
  try {
    const info = await api(`/api/generator?preset=${encodeURIComponent(preset)}`);
    setBanner(info);
    showError("");
  } catch (error) {
    $("banner").className = "banner";
    $("banner").textContent = "Generator unavailable.";
    showError(error.message);
  }
}

// ---------------------------------------------------------------- uploads
function renderUploads() {
  const list = $("uploads");
  list.replaceChildren();
  for (const upload of state.uploads) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = upload === state.selected ? "selected" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = upload.name;
    const stateText = document.createElement("span");
    stateText.className = "state";
    stateText.textContent = upload.run ? upload.run.state : upload.kind;
    button.append(name, stateText);
    button.addEventListener("click", () => select(upload));
    item.append(button);
    list.append(item);
  }
}

async function uploadFiles(files) {
  showError("");
  for (const file of files) {
    setStatus(`Uploading ${file.name}…`, "uploading");
    try {
      const stored = await api(`/api/uploads?name=${encodeURIComponent(file.name)}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: file,
      });
      const upload = { ...stored, run: null };
      state.uploads.push(upload);
      select(upload);
      await anonymize(upload);
    } catch (error) {
      setStatus(`${file.name}: not uploaded.`, "error");
      showError(`${file.name}: ${error.message}`);
    }
  }
}

function select(upload) {
  state.selected = upload;
  renderUploads();
  $("run").disabled = false;
  showUpload(upload);
  if (upload.run) showRun(upload, upload.run);
}

// ---------------------------------------------------------------- runs
async function anonymize(upload) {
  showError("");
  const options = currentOptions();
  let run;
  try {
    run = await api(`/api/uploads/${upload.id}/runs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(options),
    });
  } catch (error) {
    showError(error.message);
    setStatus("Not started.", "error");
    return;
  }
  upload.run = run;
  renderUploads();
  if (upload === state.selected) showRun(upload, run);
  while (run.state === "queued" || run.state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 250));
    try {
      run = await api(`/api/runs/${run.id}`);
    } catch (error) {
      showError(error.message);
      return;
    }
    upload.run = run;
    if (upload === state.selected) showRun(upload, run);
  }
  renderUploads();
  if (upload === state.selected) await showRun(upload, run);
}

function showUpload(upload) {
  $("empty").hidden = true;
  $("modes").hidden = upload.kind !== "image";
  $("photo-view").hidden = upload.kind !== "image";
  $("video-view").hidden = upload.kind !== "video";
  $("overlay-note").textContent = upload.kind === "image"
    ? "Boxes, faces and keypoints are what was anonymized."
    : "Overlays are drawn on photos; a video's detections are in its JSON.";
  const original = `/api/uploads/${upload.id}/original`;
  if (upload.kind === "image") {
    sizeFrames(upload.width, upload.height);
    if ($("img-original").getAttribute("src") !== original) {
      $("img-original").src = original;
      $("img-original-side").src = original;
      $("img-result").removeAttribute("src");
      clearLayers();
    }
  } else if ($("video-original").getAttribute("src") !== original) {
    $("video-original").src = original;
    $("video-result").removeAttribute("src");
  }
  setDownloads(null);
}

function sizeFrames(width, height) {
  for (const frame of document.querySelectorAll(".frame")) {
    frame.style.aspectRatio = `${width} / ${height}`;
    frame.style.width = `min(100%, calc(68vh * ${width / height}))`;
  }
  $("layer-vectors").setAttribute("viewBox", `0 0 ${width} ${height}`);
}

function clearLayers() {
  $("layer-vectors").replaceChildren();
  $("layer-masks").removeAttribute("src");
  $("layer-surfaces").removeAttribute("src");
  state.detections = null;
}

async function showRun(upload, run) {
  const progress = $("progress");
  $("summary").hidden = true;
  if (run.info && run.info.generator) setBanner(run.info);
  if (run.state === "queued" || run.state === "running") {
    const { done, total } = run.progress;
    if (upload.kind === "video" && total > 0) {
      progress.hidden = false;
      progress.max = total;
      progress.value = done;
      setStatus(`Anonymizing ${upload.name}: frame ${done} of ${total}…`, "running");
    } else {
      progress.hidden = true;
      setStatus(`Anonymizing ${upload.name}…`, "running");
    }
    return;
  }
  progress.hidden = true;
  if (run.state === "error") {
    setStatus(`${upload.name}: failed, nothing was written.`, "error");
    showError(run.message);
    setDownloads(null);
    return;
  }
  const files = `/api/runs/${run.id}/files`;
  if (upload.kind === "image") {
    const loaded = new Promise((resolve) => {
      $("img-result").onload = resolve;
      $("img-result").onerror = resolve;
    });
    $("img-result").src = `${files}/result`;
    $("layer-masks").src = `${files}/masks`;
    $("layer-surfaces").src = `${files}/surfaces`;
    state.detections = await api(`${files}/detections`);
    drawVectors(state.detections.images[0]);
    applyToggles();
    await loaded;
  } else {
    $("video-result").src = `${files}/result`;
  }
  setDownloads(run);
  showSummary(upload, run);
  const same = run.info.same_as_previous
    ? " Same result as before: this generator does not depend on the seed." : "";
  setStatus(`${upload.name}: done in ${run.seconds}s.${same}`, "done");
  $("status").dataset.run = run.id;
}

function setDownloads(run) {
  for (const [id, name] of [["download-result", "result"], ["download-detections", "detections"]]) {
    const link = $(id);
    if (run) {
      link.href = `/api/runs/${run.id}/files/${name}?download=true`;
      link.classList.remove("disabled");
      link.removeAttribute("aria-disabled");
    } else {
      link.removeAttribute("href");
      link.classList.add("disabled");
      link.setAttribute("aria-disabled", "true");
    }
  }
}

function showSummary(upload, run) {
  const summary = $("summary");
  summary.replaceChildren();
  const items = [
    ["persons", run.info.persons],
    ["faces", run.info.faces],
    ["size", `${upload.width}×${upload.height}`],
    ["seed", run.options.seed],
    ["truncation", run.options.truncation === null ? "default" : run.options.truncation],
  ];
  if (upload.kind === "video") items.push(["frames", run.info.frames]);
  else items.push(["replaced", `${(100 * run.info.replaced_fraction).toFixed(1)}% of pixels`]);
  for (const [term, value] of items) {
    const pair = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = `${term}:`;
    dd.textContent = String(value);
    pair.append(dt, dd);
    summary.append(pair);
  }
  summary.hidden = false;
}

// ---------------------------------------------------------------- overlays
function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function drawVectors(entry) {
  const layer = $("layer-vectors");
  layer.replaceChildren();
  const groups = {
    boxes: svgElement("g", { class: "boxes" }),
    faces: svgElement("g", { class: "faces" }),
    keypoints: svgElement("g", { class: "keypoints" }),
  };
  const width = Number(layer.getAttribute("viewBox").split(" ")[2]) || 1000;
  const stroke = Math.max(2, width / 400);
  for (const person of entry.persons) {
    const [x0, y0, x1, y1] = person.box;
    groups.boxes.append(svgElement("rect", {
      x: x0, y: y0, width: x1 - x0, height: y1 - y0, fill: "none", stroke: "#ff3030", "stroke-width": stroke,
    }));
    for (const [x, y, confidence] of person.keypoints || []) {
      if (confidence < 0.3) continue;
      groups.keypoints.append(svgElement("circle", {
        cx: x, cy: y, r: stroke * 1.6, fill: "#ffd400", stroke: "#333", "stroke-width": stroke / 3,
      }));
    }
  }
  for (const face of entry.faces) {
    const [x0, y0, x1, y1] = face.box;
    groups.faces.append(svgElement("rect", {
      x: x0, y: y0, width: x1 - x0, height: y1 - y0, fill: "none", stroke: "#2f7dff", "stroke-width": stroke,
    }));
  }
  layer.append(groups.boxes, groups.faces, groups.keypoints);
}

function applyToggles() {
  const layer = $("layer-vectors");
  for (const name of ["boxes", "faces", "keypoints"]) {
    const group = layer.querySelector(`g.${name}`);
    if (group) group.style.display = $(`show-${name}`).checked ? "" : "none";
  }
  $("layer-masks").hidden = !$("show-masks").checked;
  $("layer-surfaces").hidden = !$("show-surfaces").checked;
}

// ---------------------------------------------------------------- slider
function setSlider(percent) {
  $("img-original").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $("divider").style.left = `calc(${percent}% - 1px)`;
}

function setMode(mode) {
  const view = $("photo-view");
  view.classList.toggle("mode-slider", mode === "slider");
  view.classList.toggle("mode-side", mode === "side");
  $("mode-slider").classList.toggle("active", mode === "slider");
  $("mode-side").classList.toggle("active", mode === "side");
}

// ---------------------------------------------------------------- start
async function start() {
  try {
    state.config = await api("/api/config");
  } catch (error) {
    showError(error.message);
    return;
  }
  const select = $("preset");
  for (const preset of state.config.presets) {
    const option = document.createElement("option");
    option.value = preset.name;
    option.textContent = preset.needs_weights ? `${preset.name} (needs weights)` : preset.name;
    option.title = preset.description || "";
    select.append(option);
  }
  const verification = state.config.verification;
  if (!verification.available) {
    $("verify").disabled = true;
    $("verify-note").textContent = verification.note;
    $("verify-note").hidden = false;
  }
  await refreshBanner();

  select.addEventListener("change", refreshBanner);
  $("truncation-default").addEventListener("change", () => {
    const useDefault = $("truncation-default").checked;
    $("truncation").disabled = useDefault;
    $("truncation-value").textContent = useDefault ? "—" : $("truncation").value;
  });
  $("truncation").addEventListener("input", () => { $("truncation-value").textContent = $("truncation").value; });
  $("run").addEventListener("click", () => state.selected && anonymize(state.selected));
  $("new-person").addEventListener("click", () => {
    const values = new Uint32Array(1);
    crypto.getRandomValues(values);
    $("seed").value = String(values[0] % 2147483647);
    if (state.selected) anonymize(state.selected);
  });
  for (const name of ["boxes", "masks", "faces", "keypoints", "surfaces"]) {
    $(`show-${name}`).addEventListener("change", applyToggles);
  }
  $("slider").addEventListener("input", () => setSlider(Number($("slider").value)));
  setSlider(50);
  $("mode-slider").addEventListener("click", () => setMode("slider"));
  $("mode-side").addEventListener("click", () => setMode("side"));

  $("file-input").addEventListener("change", () => {
    const files = [...$("file-input").files];
    $("file-input").value = "";
    uploadFiles(files);
  });
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadFiles([...event.dataTransfer.files]);
  });
  document.body.dataset.ready = "true";
}

start();
