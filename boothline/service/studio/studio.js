// boothline studio: a page over the /v1 API of `boothline serve` and nothing else. The API key lives in this
// browser's local storage; images, grids and event streams use the signed URLs the API returns, so the key
// is only ever sent in the Authorization header, to this origin.

const KEY_STORE = "boothline.key";
const THEME_STORE = "boothline.theme";
const ACTIVE = ["queued", "running"];
const SVG = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const $ = (selector, root = document) => root.querySelector(selector);

const studio = { key: null, settings: null, samplers: [], styles: [], models: [], subjects: new Map(), streams: new Map() };

// ---- the API -------------------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body, retryAfter) {
    super(body.detail || `request failed (${status})`);
    Object.assign(this, { status, body, retryAfter });
  }
}

async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Authorization: `Bearer ${studio.key}` };
  let body = form;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiFailure(0, { detail: "the service cannot be reached; is boothline serve running?" });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const failure = new ApiFailure(response.status, data, response.headers.get("Retry-After"));
    if (response.status === 401 && path !== "/v1/me") signOut("Your key is no longer accepted; sign in again.");
    throw failure;
  }
  return data;
}

// What a refusal means, in words, for the place that caused it.
function explain(error) {
  if (!(error instanceof ApiFailure)) return `Something went wrong: ${error.message}`;
  const { status, body, retryAfter } = error;
  if (status === 402) return `Not enough credits: ${body.detail}`;
  if (status === 429) return `Too many requests: wait ${retryAfter || "a few"} s and try again.`;
  if (status === 413) return `Too large: ${body.detail}`;
  if (status === 401) return "That key is not accepted.";
  const detail = body.detail || "";
  // a detail may already begin with the field it is about; name the field only where it does not
  return !body.field || detail.startsWith(body.field) ? detail : `${body.field}: ${detail}`;
}

function show(element, text) {
  element.textContent = text || "";
}

function make(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// ---- theme, sign in and out, the header -----------------------------------------------------------------

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const theme = dark ? "light" : "dark";
  localStorage.setItem(THEME_STORE, theme);
  applyTheme(theme);
}

async function signIn(key) {
  studio.key = key;
  const me = await api("/v1/me");
  localStorage.setItem(KEY_STORE, key);
  $("#sign-in").hidden = true;
  $("#studio").hidden = false;
  $("#account").hidden = false;
  $("#sign-out").hidden = false;
  showAccount(me);
  await Promise.all([loadSettings(), loadSamplers(), loadStyles(), loadModels(), loadSubjects()]);
  await Promise.all([loadJobs("training"), loadJobs("generation")]);
  resetGallery();
}

function signOut(reason) {
  for (const stream of studio.streams.values()) stream.close();
  studio.streams.clear();
  localStorage.removeItem(KEY_STORE);
  studio.key = null;
  $("#studio").hidden = true;
  $("#account").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#api-key").value = "";
  show($("#sign-in-error"), reason || "");
}

function showAccount(me) {
  const c = me.credits;
  const resets = new Date(c.resets_at).toLocaleString();
  show($("#user-name"), me.user);
  show($("#credits"), `${c.available} credits available · ${c.held} held · daily allowance resets ${resets}`);
}

async function refreshAccount() {
  try {
    showAccount(await api("/v1/me"));
  } catch { /* the next refresh tries again */ }
}

// ---- tabs --------------------------------------------------------------------------------------------

function openTab(name) {
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
}

// ---- subjects ------------------------------------------------------------------------------------------

let chosen = []; // {file, url, status, reason}

function addPhotos(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/") && file.type) continue;
    chosen.push({ file, url: URL.createObjectURL(file), status: "chosen", reason: "" });
  }
  renderPhotos();
}

function renderPhotos() {
  const list = $("#photo-list");
  list.replaceChildren(...chosen.map((photo, i) => {
    const remove = make("button", { type: "button", className: "secondary", textContent: "Remove" });
    remove.setAttribute("aria-label", `Remove ${photo.file.name}`);
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(photo.url);
      chosen.splice(i, 1);
      renderPhotos();
    });
    const status = photo.status === "rejected" ? `refused: ${photo.reason}`
      : photo.status === "accepted" ? "accepted" : "not checked yet";
    return make("li", { className: "photo" },
      make("img", { src: photo.url, alt: photo.file.name }),
      make("div", { className: "name", textContent: photo.file.name }),
      make("div", { className: `status status-${photo.status}`, textContent: status }),
      remove);
  }));
}

async function submitSubject(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#subject-error");
  show(error, "");
  if (chosen.length === 0) return show(error, "Choose 3-20 photos first.");
  const data = new FormData();
  for (const photo of chosen) data.append("photos", photo.file, photo.file.name);
  for (const name of ["token", "class_noun", "kind"]) data.append(name, form.elements[name].value);
  $("#subject-submit").disabled = true;
  try {
    const subject = await api("/v1/subjects", { method: "POST", form: data });
    for (const photo of chosen) URL.revokeObjectURL(photo.url);
    chosen = [];
    renderPhotos();
    const warnings = (subject.warnings || []).map((w) => `${w.file}: ${w.reason}`).join("; ");
    show(error, "");
    $("#photo-list").append(make("li", { className: "status-accepted", textContent:
      `Saved ${subject.photos.length} photos as ${subject.token} ${subject.class_noun}.${warnings ? " " + warnings : ""}` }));
    await loadSubjects();
  } catch (failure) {
    const rejected = failure.body?.rejected;
    if (rejected) {
      const reasons = new Map(rejected.map((r) => [r.file, r.reason]));
      const accepted = new Set(failure.body.accepted || []);
      for (const photo of chosen) {
        photo.status = reasons.has(photo.file.name) ? "rejected" : accepted.has(photo.file.name) ? "accepted" : photo.status;
        photo.reason = reasons.get(photo.file.name) || "";
      }
      renderPhotos();
    }
    show(error, rejected ? `${failure.body.detail}: remove the refused ones, or replace them, and save again.`
      : explain(failure));
  } finally {
    $("#subject-submit").disabled = false;
  }
}

async function loadSubjects() {
  const { data } = await api("/v1/subjects?limit=100");
  studio.subjects = new Map(data.map((s) => [s.id, s]));
  $("#subject-list").replaceChildren(...data.map((subject) => {
    const remove = make("button", { type: "button", className: "danger", textContent: "Delete" });
    remove.addEventListener("click", async () => {
      if (remove.dataset.armed !== "yes") {
        remove.dataset.armed = "yes";
        remove.textContent = "Delete: are you sure?";
        return;
      }
      try {
        await api(`/v1/subjects/${subject.id}`, { method: "DELETE" });
        await loadSubjects();
      } catch (failure) {
        show($("#subject-error"), explain(failure));
      }
    });
    const train = make("button", { type: "button", textContent: "Train" });
    train.addEventListener("click", () => {
      $("#training-subject").value = subject.id;
      openTab("training");
    });
    return make("li", { className: "card" }, make("div", { className: "card-head" },
      make("span", { className: "title", textContent: `${subject.token} ${subject.class_noun}` }),
      make("span", { className: "badge", textContent: `${subject.photos.length} photos · ${subject.kind}` }),
      train, remove));
  }));
  $("#training-subject").replaceChildren(...data.map((s) =>
    make("option", { value: s.id, textContent: `${s.token} ${s.class_noun} (${s.photos.length} photos)` })));
}

// ---- settings, samplers, styles, models ------------------------------------------------------------------

async function loadSettings() {
  studio.settings = await api("/v1/settings");
  $("#training-settings").replaceChildren(...studio.settings.training.map(settingField));
  const defaults = Object.fromEntries(studio.settings.generation.map((s) => [s.key, s.default]));
  $("#gen-steps").value = defaults["generate.steps"];
  $("#gen-guidance").value = defaults["generate.guidance"];
  $("#gen-negative").value = defaults["generate.negative_prompt"] ?? "";
  studio.defaultSampler = defaults["generate.scheduler"];
}

function settingField(setting) {
  const label = make("label", {}, make("span", { textContent: setting.key }));
  let input;
  if (setting.type.startsWith("boolean")) {
    input = make("input", { type: "checkbox", checked: Boolean(setting.default) });
    label.className = "check";
  } else if (setting.choices) {
    input = make("select", {}, ...setting.choices.map((c) => make("option", { value: String(c), textContent: String(c) })));
    input.value = String(setting.default);
  } else {
    const numeric = /^(integer|number)/.test(setting.type);
    const shown = Array.isArray(setting.default) ? setting.default.join(",") : setting.default ?? "";
    input = make("input", { type: numeric ? "number" : "text", value: shown });
    if (setting.type.startsWith("number")) input.step = "any";
    if (setting.minimum !== undefined) input.min = setting.minimum;
    if (setting.maximum !== undefined) input.max = setting.maximum;
    const range = [setting.minimum ?? setting.exclusive_minimum, setting.maximum ?? setting.exclusive_maximum];
    input.title = `${setting.type}${range.some((v) => v !== undefined) ? `, ${range[0] ?? "…"} to ${range[1] ?? "…"}` : ""}`;
    if (setting.type.startsWith("list")) input.title = "a comma-separated list";
  }
  input.name = setting.key;
  input.dataset.type = setting.type;
  label.append(input);
  return label;
}

function changedSettings() {
  const out = {};
  for (const setting of studio.settings.training) {
    const input = $("#training-settings").querySelector(`[name="${CSS.escape(setting.key)}"]`);
    let value = input.type === "checkbox" ? input.checked : input.value;
    if (/^(integer|number)/.test(setting.type)) value = value === "" ? null : Number(value);
    else if (setting.type.startsWith("list")) value = value.split(",").map((v) => v.trim()).filter(Boolean);
    else if (setting.type.endsWith("or null") && value === "") value = null;
    if (setting.choices && typeof setting.default === "number") value = Number(value);
    if (JSON.stringify(value) !== JSON.stringify(setting.default)) out[setting.key] = value;
  }
  return out;
}

async function loadSamplers() {
  studio.samplers = (await api("/v1/samplers")).data;
  const select = $("#gen-sampler");
  select.replaceChildren(...studio.samplers.map((s) => make("option", { value: s.name, textContent: s.a1111_name })));
  select.value = studio.defaultSampler || studio.samplers[0].name;
  describeSampler();
}

function describeSampler() {
  const sampler = studio.samplers.find((s) => s.name === $("#gen-sampler").value);
  if (!sampler) return;
  const settings = Object.entries(sampler.settings).map(([k, v]) => `${k} = ${v}`).join(", ");
  show($("#sampler-settings"), `${sampler.a1111_name}: ${sampler.class}${settings ? ` (${settings})` : ", its defaults"}`);
}

async function loadStyles() {
  studio.styles = (await api("/v1/styles")).data;
  $("#style-picker").replaceChildren(...studio.styles.map((style, i) => make("label", { className: "style-tile", title: style.description || style.name },
    make("img", { src: style.thumbnail_url, alt: "", loading: "lazy", width: 64, height: 64 }),
    make("span", {}, make("input", { type: "checkbox", name: "style", value: style.name, checked: i === 0 }), ` ${style.name}`))));
  $("#gallery-filters").elements.style.append(...studio.styles.map((s) => make("option", { value: s.name, textContent: s.name })));
}

async function loadModels() {
  studio.models = (await api("/v1/models")).data;
  const options = [];
  for (const model of studio.models) {
    for (const version of model.versions) {
      const aliases = version.aliases.length ? ` (${version.aliases.join(", ")})` : "";
      options.push(make("option", { value: version.uri, textContent: `${model.name} v${version.version}${aliases}` }));
    }
  }
  const select = $("#gen-model");
  const before = select.value;
  select.replaceChildren(...(options.length ? options : [make("option", { value: "", textContent: "no model yet: train one first" })]));
  if (before && options.some((o) => o.value === before)) select.value = before;
  const filter = $("#gallery-filters").elements.model;
  filter.replaceChildren(make("option", { value: "", textContent: "any" }),
    ...studio.models.map((m) => make("option", { value: m.name, textContent: m.name })));
}

// ---- jobs: trainings and generations, followed by their event streams ------------------------------------

async function loadJobs(kind) {
  const { data } = await api(`/v1/${kind}s?limit=20`);
  const list = kind === "training" ? $("#training-jobs") : $("#generation-jobs");
  list.replaceChildren(...data.map((job) => jobCard(job)));
  for (const job of data) if (ACTIVE.includes(job.status)) follow(job);
}

function follow(job) {
  if (studio.streams.has(job.id)) return;
  const stream = new EventSource(job.urls.events);
  studio.streams.set(job.id, stream);
  stream.addEventListener("job", (event) => {
    const current = JSON.parse(event.data);
    updateCard(current);
    if (!ACTIVE.includes(current.status)) finish(current);
  });
  stream.onerror = () => {
    if (stream.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    studio.streams.delete(job.id);
    setTimeout(() => refollow(job), 2000); // e.g. the signature expired: a fresh job object has a fresh URL
  };
}

async function refollow(job) {
  try {
    const current = await api(job.urls.self);
    updateCard(current);
    if (ACTIVE.includes(current.status)) follow(current);
    else finish(current);
  } catch {
    setTimeout(() => refollow(job), 5000);
  }
}

function finish(job) {
  studio.streams.get(job.id)?.close();
  studio.streams.delete(job.id);
  refreshAccount();
  if (job.kind === "training" && job.status === "succeeded") loadModels();
  if (job.kind === "generation") resetGallery();
}

function updateCard(job) {
  const old = document.getElementById(`job-${job.id}`);
  const card = jobCard(job);
  if (old) old.replaceWith(card);
  else (job.kind === "training" ? $("#training-jobs") : $("#generation-jobs")).prepend(card);
}

function jobCard(job) {
  const subject = studio.subjects.get(job.input.subject);
  const title = job.kind === "training" ? `Training ${subject ? `${subject.token} ${subject.class_noun}` : job.input.subject}`
    : `${(job.input.prompts || []).join("; ")} · ${[].concat(job.input.styles).join(", ")}`;
  const card = make("li", { className: "card job", id: `job-${job.id}` });
  card.dataset.status = job.status;
  const head = make("div", { className: "card-head" },
    make("span", { className: "title", textContent: title }),
    make("span", { className: `badge ${job.status}`, textContent: job.status }));
  if (job.status === "queued" && job.queue_position) {
    head.append(make("span", { className: "badge queue", textContent: `queue position ${job.queue_position}` }));
  }
  if (ACTIVE.includes(job.status)) {
    const cancel = make("button", { type: "button", className: "danger", textContent: "Cancel" });
    cancel.addEventListener("click", async () => {
      try {
        updateCard(await api(job.urls.cancel, { method: "POST" }));
      } catch (failure) {
        card.append(make("p", { className: "error", textContent: explain(failure) }));
      }
    });
    head.append(cancel);
  }
  card.append(head);
  if (job.kind === "training") trainingDetails(card, job);
  else generationDetails(card, job);
  if (job.error) card.append(make("p", { className: "error", textContent: job.error }));
  return card;
}

function trainingDetails(card, job) {
  const p = job.progress || {};
  if (p.total) {
    const eta = p.eta_seconds ? ` · about ${Math.ceil(p.eta_seconds)} s left` : "";
    const stage = p.stage && ACTIVE.includes(job.status) ? ` · ${p.stage}` : "";
    card.append(make("p", { className: "step", textContent: `step ${p.step} of ${p.total}${eta}${stage}` }),
      make("progress", { max: p.total, value: p.step }));
  }
  if (p.losses && p.losses.length) card.append(lossCurve(p.losses));
  if (job.urls.validation_grids?.length) {
    card.append(make("div", { className: "grids" }, ...job.urls.validation_grids.map((url, i) =>
      make("img", { src: url, alt: `validation grid ${p.validation_grids?.[i] || i + 1}` }))));
  }
  const result = job.result;
  if (result?.metrics) {
    const rows = Object.entries(result.metrics).filter(([, v]) => v !== null).map(([name, value]) =>
      make("tr", {}, make("td", { textContent: name }), make("td", { textContent: value.toFixed(4) }),
        make("td", { textContent: result.baseline?.[name] == null ? "–" : result.baseline[name].toFixed(4) })));
    card.append(make("table", { className: "metrics" },
      make("thead", {}, make("tr", {}, ...["metric", "trained", "base model"].map((t) => make("th", { textContent: t })))),
      make("tbody", {}, ...rows)));
  }
  if (result?.registered) {
    const r = result.registered;
    card.append(make("p", { className: "registered", textContent:
      `Registered ${r.model_name} version ${r.version}${r.aliases?.length ? ` (${r.aliases.join(", ")})` : ""}` }));
  }
}

function lossCurve(losses) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "loss-curve");
  svg.setAttribute("viewBox", "0 0 100 100");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const values = losses.map((l) => l.loss);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const last = losses[losses.length - 1];
  svg.setAttribute("aria-label", `loss curve: ${losses.length} steps, last loss ${last.loss.toFixed(3)}`);
  const span = Math.max(losses[losses.length - 1].step - losses[0].step, 1);
  const points = losses.map((l) => `${((l.step - losses[0].step) / span) * 100},${95 - ((l.loss - low) / (high - low || 1)) * 90}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function generationDetails(card, job) {
  const p = job.progress || {};
  if (p.images_total) {
    card.append(make("p", { className: "step", textContent: `${p.images_done} of ${p.images_total} images` }),
      make("progress", { max: p.images_total, value: p.images_done }));
  }
  if (job.urls.images?.length) {
    card.append(make("div", { className: "images" }, ...job.urls.images.map((url, i) =>
      make("img", { src: url, alt: `image ${i + 1} of job ${job.id}` }))));
  }
}

async function submitTraining(event) {
  event.preventDefault();
  const error = $("#training-error");
  show(error, "");
  try {
    const job = await api("/v1/trainings", { method: "POST", json: { subject: $("#training-subject").value, settings: changedSettings() } });
    updateCard(job);
    follow(job);
    refreshAccount();
  } catch (failure) {
    show(error, explain(failure));
  }
}

function parseSeeds(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean).map(Number);
  if (!parts.length || parts.some((n) => !Number.isInteger(n) || n < 0)) return null;
  return parts.length === 1 && !text.includes(",") ? parts[0] : parts;
}

async function submitGeneration(event) {
  event.preventDefault();
  const error = $("#generate-error");
  show(error, "");
  const styles = [...document.querySelectorAll('#style-picker input[name="style"]:checked')].map((i) => i.value);
  const seeds = parseSeeds($("#gen-seeds").value);
  if (!styles.length) return show(error, "Pick at least one style.");
  if (seeds === null) return show(error, "Seeds: a count such as 2, or a list such as 1, 7, 42.");
  if (!$("#gen-model").value) return show(error, "There is no model yet: train one first.");
  const settings = { "generate.steps": Number($("#gen-steps").value), "generate.guidance": Number($("#gen-guidance").value),
    "generate.scheduler": $("#gen-sampler").value, "generate.negative_prompt": $("#gen-negative").value };
  try {
    const job = await api("/v1/generations", { method: "POST", json: {
      model: $("#gen-model").value, prompts: [$("#gen-prompt").value], styles, seeds, settings } });
    updateCard(job);
    follow(job);
    refreshAccount();
  } catch (failure) {
    show(error, explain(failure));
  }
}

// ---- the gallery -----------------------------------------------------------------------------------------

const gallery = { cursor: null, done: false, loading: false, selected: new Set(), records: new Map() };

function resetGallery() {
  Object.assign(gallery, { cursor: null, done: false });
  gallery.records.clear();
  gallery.selected.clear();
  updateSelection();
  $("#gallery").replaceChildren();
  loadGalleryPage();
}

async function loadGalleryPage() {
  if (gallery.loading || gallery.done || !studio.key) return;
  gallery.loading = true;
  const query = new URLSearchParams({ limit: "24" });
  for (const [name, value] of new FormData($("#gallery-filters"))) if (value) query.set(name, value);
  if (gallery.cursor) query.set("cursor", gallery.cursor);
  show($("#gallery-error"), "");
  try {
    const page = await api(`/v1/history?${query}`);
    $("#gallery").append(...page.data.map(galleryItem));
    gallery.cursor = page.next_cursor;
    gallery.done = !page.next_cursor;
    show($("#gallery-end"), gallery.done ? (gallery.records.size ? "That is everything." : "No images yet.") : "Loading…");
  } catch (failure) {
    show($("#gallery-error"), explain(failure));
    gallery.done = true;
  } finally {
    gallery.loading = false;
  }
}

function galleryItem(record) {
  gallery.records.set(record.image_id, record);
  const pick = make("input", { type: "checkbox", className: "pick-box" });
  pick.setAttribute("aria-label", `Select image ${record.image_id}`);
  pick.addEventListener("change", () => {
    if (pick.checked) gallery.selected.add(record.image_id);
    else gallery.selected.delete(record.image_id);
    updateSelection();
  });
  const open = make("button", { type: "button", className: "open" },
    make("img", { src: record.url, alt: `${record.style}, seed ${record.seed}: ${record.prompt}`, loading: "lazy" }));
  open.addEventListener("click", () => openViewer(record));
  const item = make("li", { id: `image-${record.image_id}` }, open, make("label", { className: "pick" }, pick),
    make("div", { className: "caption", textContent: `${record.style} · seed ${record.seed}` }));
  item.dataset.imageId = record.image_id;
  return item;
}

function updateSelection() {
  show($("#selected-count"), `${gallery.selected.size} selected`);
  $("#download-zip").disabled = gallery.selected.size === 0;
}

async function downloadZip() {
  try {
    const exported = await api("/v1/exports", { method: "POST", json: { image_ids: [...gallery.selected] } });
    const link = make("a", { href: exported.url, download: `${exported.id}.zip` });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (failure) {
    show($("#gallery-error"), explain(failure));
  }
}

let viewing = null;

async function openViewer(record) {
  viewing = record;
  const dialog = $("#viewer");
  $("#viewer-image").src = record.url;
  $("#viewer-image").alt = record.full_prompt;
  show($("#viewer-title"), `${record.style} · seed ${record.seed}`);
  show($("#viewer-prompt"), record.full_prompt);
  show($("#viewer-message"), "");
  show($("#viewer-parameters"), "");
  const shown = { prompt: record.prompt, style: record.style, seed: record.seed, steps: record.steps,
    guidance: record.guidance, sampler: record.scheduler, size: `${record.width} × ${record.height}`,
    negative: record.negative_prompt, model: record.model_uri, version: record.model_version,
    created: new Date(record.created_at).toLocaleString(), image: record.image_id };
  $("#viewer-params").replaceChildren(...Object.entries(shown).flatMap(([k, v]) =>
    [make("dt", { textContent: k }), make("dd", { textContent: String(v ?? "") })]));
  const download = $("#download-image");
  download.href = record.url;
  download.download = record.file_name;
  if (!dialog.open) dialog.showModal();
  try {
    show($("#viewer-parameters"), (await api(record.params_url)).parameters || "");
  } catch (failure) {
    show($("#viewer-message"), explain(failure));
  }
}

// The log holds the final negative prompt: the style's phrases, then the form's that the style lacked
// (generation.prompts.merge_phrases). Without the style's, it is a form value that renders the same image again.
function formNegative(record) {
  const tidy = (phrase) => phrase.trim().split(/\s+/).join(" ");
  const style = studio.styles.find((s) => s.name === record.style);
  const own = new Set((style ? style.negative : "").split(",").map((p) => tidy(p).toLowerCase()));
  return record.negative_prompt.split(",").map(tidy).filter((p) => p && !own.has(p.toLowerCase())).join(", ");
}

function useSettings() {
  const r = viewing;
  $("#gen-prompt").value = r.prompt;
  $("#gen-seeds").value = `${r.seed},`;
  $("#gen-steps").value = r.steps;
  $("#gen-guidance").value = r.guidance;
  $("#gen-sampler").value = r.scheduler;
  describeSampler();
  $("#gen-negative").value = formNegative(r);
  for (const box of document.querySelectorAll('#style-picker input[name="style"]')) box.checked = box.value === r.style;
  const model = $("#gen-model");
  if (![...model.options].some((o) => o.value === r.model_uri)) {
    model.append(make("option", { value: r.model_uri, textContent: r.model_uri }));
  }
  model.value = r.model_uri;
  $("#viewer").close();
  openTab("generate");
  $("#gen-prompt").focus();
}

async function regenerate() {
  show($("#viewer-message"), "Rendering again…");
  try {
    const result = await api(`/v1/images/${viewing.image_id}/regenerate`, { method: "POST" });
    show($("#viewer-message"), result.identical ? "Rendered again: identical, bit for bit."
      : "Rendered again: the pixels differ from the original.");
    refreshAccount();
  } catch (failure) {
    show($("#viewer-message"), explain(failure));
  }
}

async function deleteImage() {
  try {
    await api(`/v1/images/${viewing.image_id}`, { method: "DELETE" });
    document.getElementById(`image-${viewing.image_id}`)?.remove();
    gallery.selected.delete(viewing.image_id);
    updateSelection();
    $("#viewer").close();
  } catch (failure) {
    show($("#viewer-message"), explain(failure));
  }
}

// ---- wiring --------------------------------------------------------------------------------------------

function wire() {
  applyTheme(localStorage.getItem(THEME_STORE));
  $("#theme-toggle").addEventListener("click", toggleTheme);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show($("#sign-in-error"), "");
    try {
      await signIn($("#api-key").value.trim());
    } catch (failure) {
      studio.key = null;
      show($("#sign-in-error"), explain(failure));
    }
  });
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => openTab(button.dataset.tab));
  }
  const zone = $("#drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); addPhotos(e.dataTransfer.files); });
  $("#photo-input").addEventListener("change", (e) => { addPhotos(e.target.files); e.target.value = ""; });
  $("#subject-form").addEventListener("submit", submitSubject);
  $("#training-form").addEventListener("submit", submitTraining);
  $("#generate-form").addEventListener("submit", submitGeneration);
  $("#gen-sampler").addEventListener("change", describeSampler);
  $("#gallery-filters").addEventListener("submit", (e) => { e.preventDefault(); resetGallery(); });
  $("#download-zip").addEventListener("click", downloadZip);
  $("#use-settings").addEventListener("click", useSettings);
  $("#regenerate").addEventListener("click", regenerate);
  $("#delete-image").addEventListener("click", deleteImage);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadGalleryPage();
  }).observe($("#gallery-end"));
  setInterval(() => studio.key && refreshAccount(), 15000);
}

wire();
const saved = localStorage.getItem(KEY_STORE);
if (saved) {
  signIn(saved).catch((failure) => signOut(failure.status === 401 ? "Your key is no longer accepted; sign in again." : explain(failure)));
} else {
  signOut();
}
