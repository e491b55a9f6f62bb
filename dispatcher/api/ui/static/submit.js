// The submit form: code or a command, an allow-listed image, timeout, resources, env and labels.
// The API's 422 messages (one per field) are shown next to their fields.

import { ApiError, call } from "./api.js";
import { announce, clear, h } from "./dom.js";

// Where a message about an API field is shown (the first part of its name, but resources.*).
const SLOTS = ["eval_id", "code", "command", "image", "timeout_seconds", "resources.cpu", "resources.memory", "env", "labels"];

function field(name, label, control, hint) {
  const error = h("p", { class: "error", id: `error-${name}`, hidden: true });
  control.id = `field-${name}`;
  control.name = name;
  const hintNode = hint ? h("p", { class: "hint", id: `hint-${name}` }, hint) : null;
  control.setAttribute("aria-describedby", [hint ? `hint-${name}` : "", `error-${name}`].join(" ").trim());
  return h("div", { class: "field", dataset: { field: name } },
    h("label", { for: control.id }, label), hintNode, control, error);
}

function pairs(textValue) {
  const out = {};
  for (const line of textValue.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at === -1) out[line.trim()] = "";
    else out[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return out;
}

export function submitView(main, { session, navigate }) {
  const config = session.config;
  const limits = config.limits || {};
  const mode = h("fieldset", { class: "mode" }, h("legend", {}, "Run"),
    h("label", {}, h("input", { type: "radio", name: "mode", value: "code", checked: true, id: "mode-code" }), " Python code"),
    h("label", {}, h("input", { type: "radio", name: "mode", value: "command", id: "mode-command" }), " A command"));
  const code = h("textarea", { rows: "8", spellcheck: "false", class: "mono" });
  const command = h("textarea", { rows: "3", spellcheck: "false", class: "mono" });
  const image = h("select", {}, (config.images || []).map((name) =>
    h("option", { value: name, selected: name === config.default_image }, name)));
  const timeout = h("input", { type: "number", min: "1", step: "any", inputmode: "decimal", placeholder: String(limits.timeout_seconds_default ?? "") });
  const cpu = h("input", { type: "text", placeholder: limits.cpu_default || "" });
  const memory = h("input", { type: "text", placeholder: limits.memory_default || "" });
  const env = h("textarea", { rows: "3", spellcheck: "false", class: "mono" });
  const labelsInput = h("textarea", { rows: "2", spellcheck: "false", class: "mono" });
  const evalId = h("input", { type: "text", autocomplete: "off" });
  const summary = h("div", { id: "form-errors", class: "error-summary", hidden: true, tabindex: "-1", role: "alert" });
  const send = h("button", { type: "submit", id: "submit" }, "Submit");
  const codeField = field("code", "Code", code, "Python source, run with the image's python.");
  const commandField = field("command", "Command", command, "One argument per line.");
  commandField.hidden = true;

  const form = h("form", { id: "submit-form", novalidate: true },
    summary, mode, codeField, commandField,
    field("image", "Image", image, "From the dispatcher's allow-list."),
    field("timeout_seconds", "Timeout (seconds)", timeout, `At most ${limits.timeout_seconds_max ?? "?"} s; empty: ${limits.timeout_seconds_default ?? "default"}.`),
    h("div", { class: "row" },
      field("resources.cpu", "CPU", cpu, `e.g. 500m; at most ${limits.cpu_max ?? "?"}.`),
      field("resources.memory", "Memory", memory, `e.g. 512Mi; at most ${limits.memory_max ?? "?"}.`)),
    field("env", "Environment", env, "NAME=value, one per line."),
    field("labels", "Labels", labelsInput, "key=value, one per line."),
    field("eval_id", "Evaluation id (optional)", evalId, "Letters, digits, . _ -; empty: one is made up."),
    send);

  mode.addEventListener("change", () => {
    const isCode = form.querySelector("#mode-code").checked;
    codeField.hidden = !isCode;
    commandField.hidden = isCode;
  });

  function clearErrors() {
    summary.hidden = true;
    summary.replaceChildren();
    for (const node of form.querySelectorAll(".field")) {
      node.querySelector(".error").hidden = true;
      const control = node.querySelector("input, select, textarea");
      control.removeAttribute("aria-invalid");
    }
  }

  function showErrors(error) {
    const loose = [];
    for (const { field: name, message } of error.details) {
      const slot = SLOTS.includes(name) ? name : SLOTS.find((s) => name.startsWith(`${s}.`)) || "";
      const node = slot && form.querySelector(`.field[data-field="${slot}"]`);
      if (node && !node.hidden) {
        const p = node.querySelector(".error");
        const said = name === slot ? message : `${name}: ${message}`;
        p.textContent = p.hidden ? said : `${p.textContent}; ${said}`;
        p.hidden = false;
        node.querySelector("input, select, textarea").setAttribute("aria-invalid", "true");
      } else {
        loose.push(h("li", {}, `${name}: ${message}`));
      }
    }
    summary.replaceChildren(h("p", {}, error.message), loose.length ? h("ul", {}, loose) : "");
    summary.hidden = false;
    summary.focus();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    const body = {};
    if (form.querySelector("#mode-code").checked) body.code = code.value;
    else body.command = command.value.split("\n").filter((line) => line !== "");
    if (image.value) body.image = image.value;
    if (timeout.value !== "") body.timeout_seconds = Number(timeout.value);
    if (cpu.value || memory.value) {
      body.resources = {};
      if (cpu.value) body.resources.cpu = cpu.value;
      if (memory.value) body.resources.memory = memory.value;
    }
    if (env.value.trim()) body.env = pairs(env.value);
    if (labelsInput.value.trim()) body.labels = pairs(labelsInput.value);
    if (evalId.value) body.eval_id = evalId.value;
    send.disabled = true;
    try {
      const record = await call("POST", "/v1/evaluations", body);
      announce(`Submitted ${record.eval_id}`);
      navigate(`#/evaluations/${encodeURIComponent(session.idFor(record))}`);
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401) showErrors(error);
      else session.fail(error);
    } finally {
      send.disabled = false;
    }
  });

  clear(main).append(h("h1", { tabindex: "-1" }, "Submit an evaluation"), form);
}
