// The workflow's page: a form from the inputs' schema, a Run button, the run's events as they
// come, the outputs as JSON in #outputs and errors in #error. site.json says where runs go:
// "pyodide" runs them in a Web Worker (worker.js), "service" posts them to a service's /stream.
// Link parameters: #inputs=<URL-encoded JSON>&endpoint=URL&run
const $ = (id) => document.getElementById(id);
const page = { config: null, worker: null, ready: false, pending: null, extra: {}, started: 0 };
let controller = null;

function setState(state, text) {
  document.body.dataset.state = state;
  if (text !== undefined) $("status").textContent = text;
}

// -- the form --------------------------------------------------------------------------------

function fieldId(name) {
  return `input-${name}`;
}

function control(name, spec) {
  const type = spec.type || "any";
  let element;
  if (Array.isArray(spec.enum)) {
    element = document.createElement("select");
    if (!spec.required) element.append(new Option("", ""));
    spec.enum.forEach((value, index) => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      element.append(new Option(text, String(index)));
    });
  } else if (type === "boolean") {
    element = document.createElement("input");
    element.type = "checkbox";
  } else if (type === "number" || type === "integer") {
    element = document.createElement("input");
    element.type = "text";
    element.inputMode = type === "integer" ? "numeric" : "decimal";
  } else {
    element = document.createElement("textarea");
    if (type !== "string") element.placeholder = "JSON";
  }
  element.id = fieldId(name);
  element.name = name;
  element.dataset.type = type;
  if (spec.required) element.setAttribute("aria-required", "true");
  return element;
}

function setField(name, value) {
  const element = $(fieldId(name));
  const spec = page.config.workflow.inputs[name];
  if (!element || !spec) return false;
  if (Array.isArray(spec.enum)) {
    const index = spec.enum.findIndex((item) => JSON.stringify(item) === JSON.stringify(value));
    element.value = index < 0 ? "" : String(index);
  } else if (element.type === "checkbox") {
    element.checked = Boolean(value);
  } else if (typeof value === "string" && element.dataset.type !== "object") {
    element.value = value;
  } else {
    element.value = element.tagName === "TEXTAREA" && typeof value !== "string"
      ? JSON.stringify(value, null, 2) : String(value);
  }
  return true;
}

function renderForm(inputs) {
  const box = $("inputs");
  for (const [name, spec] of Object.entries(inputs)) {
    const label = document.createElement("label");
    label.htmlFor = fieldId(name);
    label.textContent = name + (spec.required ? " *" : "");
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = ` ${spec.type || "any"}`;
    label.append(type);
    box.append(label, control(name, spec));
    if (spec.description) {
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.textContent = spec.description;
      box.append(hint);
    }
    const problem = document.createElement("p");
    problem.className = "field-error";
    problem.id = `error-${name}`;
    box.append(problem);
    if ("default" in spec) setField(name, spec.default);
  }
  if (!Object.keys(inputs).length) box.append("This workflow takes no inputs.");
}

function fieldProblem(name, message) {
  const slot = $(`error-${name}`);
  if (slot) slot.textContent = message;
  $(fieldId(name))?.classList.add("invalid");
}

// The inputs object; a value the page cannot read (bad JSON) is a one-line error at its field.
function readInputs() {
  const inputs = { ...page.extra };
  for (const [name, spec] of Object.entries(page.config.workflow.inputs)) {
    const element = $(fieldId(name));
    const type = spec.type || "any";
    if (Array.isArray(spec.enum)) {
      if (element.value !== "") inputs[name] = spec.enum[Number(element.value)];
      continue;
    }
    if (type === "boolean") {
      inputs[name] = element.checked;
      continue;
    }
    const raw = element.value;
    if (raw.trim() === "") continue; // the default applies, or the engine says it is missing
    if (type === "string") {
      inputs[name] = raw;
    } else if (type === "number" || type === "integer") {
      const number = Number(raw.trim());
      inputs[name] = Number.isFinite(number) ? number : raw; // the engine names a bad one
    } else {
      try {
        inputs[name] = JSON.parse(raw);
      } catch (error) {
        if (type === "any") inputs[name] = raw;
        else throw { name, message: `input '${name}' is not valid JSON: ${error.message}` };
      }
    }
  }
  return inputs;
}

// -- link parameters -------------------------------------------------------------------------

function linkParameters() {
  const found = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    if (!part) continue;
    const at = part.indexOf("=");
    const key = decodeURIComponent(at < 0 ? part : part.slice(0, at));
    found[key] = at < 0 ? "" : decodeURIComponent(part.slice(at + 1));
  }
  return found;
}

function applyLink() {
  const link = linkParameters();
  if (link.endpoint) $("endpoint").value = link.endpoint;
  if (link.inputs) {
    let given;
    try {
      given = JSON.parse(link.inputs);
    } catch (error) {
      showError({ type: "bad_input", message: `the link's inputs are not JSON: ${error.message}` });
      return false;
    }
    if (given === null || typeof given !== "object" || Array.isArray(given)) {
      showError({ type: "bad_input", message: "the link's inputs must be a JSON object" });
      return false;
    }
    page.extra = {};
    for (const [name, value] of Object.entries(given)) {
      if (!setField(name, value)) page.extra[name] = value; // the engine refuses unknown names
    }
  }
  return "run" in link;
}

// -- events ----------------------------------------------------------------------------------

function stepItem(step) {
  const id = `step-${step}`;
  let item = document.getElementById(id);
  if (!item) {
    item = document.createElement("li");
    item.id = id;
    item.innerHTML = '<span class="name"></span> <span class="seconds"></span><span class="tokens"></span>';
    item.querySelector(".name").textContent = step;
    $("events").append(item);
  }
  return item;
}

function showError(error) {
  const where = error.step ? ` (step ${error.step})` : "";
  $("error").textContent = `${error.type}: ${error.message}${where}`;
  const field = /input '([^']+)'/.exec(error.message || "");
  if (error.type === "bad_input" && field) fieldProblem(field[1], error.message);
}

function handle(event) {
  switch (event.event) {
    case "ready":
      page.ready = true;
      if (document.body.dataset.state === "loading") setState("ready", "Ready");
      if (page.pending) {
        const request = page.pending;
        page.pending = null;
        page.worker.postMessage({ request });
      }
      break;
    case "step_started": {
      const item = stepItem(event.step);
      item.dataset.state = "running";
      item.querySelector(".seconds").textContent = event.attempt > 1 ? `attempt ${event.attempt}` : "…";
      break;
    }
    case "token":
      stepItem(event.step).querySelector(".tokens").textContent += event.text;
      break;
    case "step_finished": {
      const item = stepItem(event.step);
      item.dataset.state = "done";
      item.querySelector(".seconds").textContent = `${event.seconds.toFixed(3)} s`;
      break;
    }
    case "result":
      $("outputs").textContent = JSON.stringify(event.outputs, null, 2);
      finish("done", `Done in ${elapsed()} s`);
      break;
    case "error":
      showError(event.error);
      finish("failed", page.started ? `Failed after ${elapsed()} s` : "Failed");
      break;
  }
}

function elapsed() {
  return ((performance.now() - page.started) / 1000).toFixed(1);
}

function finish(state, text) {
  setState(state, text);
  $("run").disabled = false;
  $("stop").disabled = true;
  controller = null;
}

// -- runs ------------------------------------------------------------------------------------

function startWorker() {
  page.ready = false;
  page.worker = new Worker("worker.js", { type: "module" });
  page.worker.onmessage = (message) => handle(message.data);
  page.worker.onerror = (error) => {
    handle({ event: "error", error: { type: "internal_error", message: `the worker failed: ${error.message}` } });
  };
}

function clearRun() {
  $("error").textContent = "";
  $("outputs").textContent = "";
  $("events").textContent = "";
  for (const slot of document.querySelectorAll(".field-error")) slot.textContent = "";
  for (const element of document.querySelectorAll(".invalid")) element.classList.remove("invalid");
}

async function streamFromService(inputs) {
  controller = new AbortController();
  const headers = { "Content-Type": "application/json", Accept: "application/x-ndjson" };
  const token = $("api-key").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  let reply;
  try {
    reply = await fetch(page.config.stream_url, {
      method: "POST", headers, body: JSON.stringify(inputs), signal: controller.signal,
    });
  } catch (error) {
    handle({ event: "error", error: { type: "llm_unreachable", message: `the service did not answer: ${error.message}` } });
    return;
  }
  if (!reply.ok) {
    const body = await reply.json().catch(() => ({}));
    handle({ event: "error", error: body.error || { type: "internal_error", message: `HTTP ${reply.status}` } });
    return;
  }
  const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ done: true }));
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) handle(JSON.parse(line));
    }
  }
}

function run() {
  if (document.body.dataset.state === "running") return;
  clearRun();
  let inputs;
  try {
    inputs = readInputs();
  } catch (problem) {
    fieldProblem(problem.name, problem.message);
    showError({ type: "bad_input", message: problem.message });
    setState("failed", "Failed");
    return;
  }
  page.started = performance.now();
  setState("running", "Running…");
  $("run").disabled = true;
  $("stop").disabled = false;
  if (page.config.mode === "service") {
    streamFromService(inputs);
    return;
  }
  const request = {
    inputs,
    endpoint: $("endpoint").value.trim(),
    provider: $("provider").value,
    api_key: $("api-key").value,
  };
  if (page.ready) page.worker.postMessage({ request });
  else page.pending = request;
}

function stop() {
  if (page.config.mode === "service") {
    controller?.abort();
  } else {
    page.worker.terminate(); // a Python step cannot be interrupted: a fresh worker it is
    page.pending = null;
    startWorker();
  }
  $("error").textContent = "stopped: the run was stopped from the page";
  finish("failed", "Stopped");
}

async function main() {
  page.config = await (await fetch("site.json")).json();
  const workflow = page.config.workflow;
  document.title = workflow.id || "Workflow";
  $("title").textContent = workflow.id + (workflow.version ? ` ${workflow.version}` : "");
  $("description").textContent = workflow.description || "";
  renderForm(workflow.inputs);
  $("endpoint").value = page.config.endpoint || "";
  $("provider").value = page.config.provider || "";
  if (page.config.mode === "service") {
    // The service talks to its own LLM server; a token, if it wants one, is the only setting.
    for (const id of ["endpoint", "provider"]) {
      $(id).hidden = true;
      document.querySelector(`label[for=${id}]`).hidden = true;
    }
    $("connection").querySelector("legend").textContent = "Service";
    document.querySelector("label[for=api-key]").textContent = "Token";
    setState("ready", "Ready");
  } else {
    if (!page.config.uses_llm) $("connection").hidden = true;
    startWorker();
  }
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  $("stop").addEventListener("click", stop);
  if (applyLink()) run();
  window.addEventListener("hashchange", () => {
    if (applyLink()) run();
  });
}

main().catch((error) => {
  $("error").textContent = `internal_error: the page cannot start: ${error.message}`;
  setState("failed", "Failed");
});
