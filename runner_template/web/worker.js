// The workflow's Web Worker: Pyodide, the engine and the bundle, all from this site.
// Messages in: {request: {inputs, endpoint, provider, api_key}}. Messages out: the run's
// events ({event: "step_started" | "step_finished" | "token" | "result" | "error", ...}),
// and {event: "ready"} once Python is up. One run at a time; the page terminates the worker
// to stop a run (a Python step cannot be interrupted otherwise).
import { loadPyodide } from "./pyodide/pyodide.mjs";

const base = new URL("./", import.meta.url);

async function fetchOk(path) {
  const reply = await fetch(new URL(path, base));
  if (!reply.ok) throw new Error(`${path}: HTTP ${reply.status}`);
  return reply;
}

async function bytes(path) {
  return new Uint8Array(await (await fetchOk(path)).arrayBuffer());
}

async function boot() {
  const config = await (await fetchOk("site.json")).json();
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", base).href,
    stdout: (line) => console.log(line),
    stderr: (line) => console.debug(line),
  });
  const [engine, bundle, ...wheels] = await Promise.all([
    bytes("engine.zip"),
    fetchOk("bundle.json").then((reply) => reply.text()),
    ...(config.wheels || []).map(bytes),
  ]);
  pyodide.unpackArchive(engine, "zip", { extractDir: "/home/pyodide/engine" });
  const sitePackages = pyodide.runPython(
    "import sys; next(p for p in sys.path if p.endswith('site-packages'))",
  );
  for (const wheel of wheels) pyodide.unpackArchive(wheel, "zip", { extractDir: sitePackages });
  pyodide.runPython("import sys; sys.path.insert(0, '/home/pyodide/engine')");
  return { host: pyodide.pyimport("runner_template.web.host"), bundle };
}

const booted = boot();
booted.then(
  () => self.postMessage({ event: "ready" }),
  (error) => self.postMessage(internalError(`cannot start Python: ${error}`)),
);

function internalError(message) {
  return { event: "error", error: { type: "internal_error", message, step: null } };
}

self.onmessage = async (message) => {
  let host, bundle;
  try {
    ({ host, bundle } = await booted);
  } catch {
    return; // already reported
  }
  const post = (line) => self.postMessage(JSON.parse(line));
  const request = JSON.stringify(message.data.request);
  try {
    // Stack switching (JSPI) lets the engine wait on fetch() while staying synchronous.
    await host.run.callPromising(request, bundle, post);
  } catch (error) {
    self.postMessage(internalError(String(error)));
  }
};
