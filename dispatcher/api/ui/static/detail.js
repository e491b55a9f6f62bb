// One evaluation: its record, the timeline of its events, its live output, and cancel (after a
// confirmation). Its event stream replays from the start, then goes on live until the verified end.

import { call, evaluationPath, follow, text } from "./api.js";
import { announce, clear, h } from "./dom.js";
import { TERMINAL, advances, duration, labels, when } from "./format.js";
import { OutputPane } from "./output.js";

const FIELDS = [
  ["status", "Status"], ["exit_code", "Exit code"], ["reason", "Reason"],
  ["verified", "Verified"], ["correction", "Correction"], ["queue_position", "Queue position"],
  ["tenant", "Tenant"], ["image", "Image"], ["command", "Command"],
  ["timeout_seconds", "Timeout"], ["resources", "Resources"], ["labels", "Labels"],
  ["created_at", "Created"], ["started_at", "Started"], ["finished_at", "Finished"],
  ["duration_seconds", "Duration"], ["job_name", "Job"], ["backend", "Backend"],
];

function value(name, record) {
  const v = record[name];
  if (v === null || v === undefined) return "";
  if (name.endsWith("_at")) return when(v);
  if (name === "duration_seconds") return duration(v);
  if (name === "timeout_seconds") return `${v} s`;
  if (name === "verified") return v ? "yes" : "not yet";
  if (name === "labels") return labels(v);
  if (name === "resources") return `cpu ${v.cpu}, memory ${v.memory}`;
  if (name === "command") return v.join(" ");
  return String(v);
}

const DETAILS = ["job_name", "position", "reason", "exit_code", "signal", "duration_seconds", "source"];

function timelineItem(event) {
  const parts = DETAILS.filter((k) => event[k] !== undefined && event[k] !== null)
    .map((k) => `${k}=${k === "duration_seconds" ? duration(event[k]) : event[k]}`);
  if (event.verified) parts.push("verified");
  return h("li", { class: `event e-${event.type}`, dataset: { type: event.type, verified: event.verified ? "true" : "false" } },
    h("span", { class: `badge s-${event.type}` }, event.type), " ",
    h("time", {}, when(event.ts)), " ", h("span", { class: "muted" }, parts.join(" ")));
}

export function detailView(main, { session, signal, id }) {
  const path = evaluationPath(id);
  const fields = h("dl", { id: "record" });
  const timeline = h("ol", { id: "timeline", class: "timeline" });
  const output = new OutputPane();
  const cancel = h("button", { type: "button", id: "cancel", class: "danger", hidden: true }, "Cancel evaluation");
  const dialog = h("dialog", { id: "confirm-cancel", "aria-labelledby": "confirm-title" },
    h("h2", { id: "confirm-title" }, "Cancel this evaluation?"),
    h("p", {}, "Its process or Job is stopped; the record stays, with status cancelled."),
    h("form", { method: "dialog", class: "row" },
      h("button", { value: "yes", class: "danger", id: "confirm-yes" }, "Yes, cancel it"),
      h("button", { value: "no", id: "confirm-no", autofocus: true }, "No, keep it running")));
  let record = null;

  clear(main).append(
    h("p", {}, h("a", { href: "#/" }, "← All evaluations")),
    h("h1", { tabindex: "-1" }, "Evaluation ", h("code", {}, id)),
    h("div", { class: "row" }, cancel),
    h("div", { class: "detail" },
      h("section", { "aria-labelledby": "record-title" }, h("h2", { id: "record-title" }, "Record"), fields),
      h("div", {},
        h("section", { "aria-labelledby": "output-title" },
          h("h2", { id: "output-title" }, "Output"),
          h("p", { class: "muted legend" }, h("span", { class: "line stdout" }, "out"), " stdout, ",
            h("span", { class: "line stderr" }, "err"), " stderr"),
          output.node),
        h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline))),
    dialog);

  function render() {
    fields.replaceChildren(...FIELDS.filter(([n]) => value(n, record) !== "")
      .flatMap(([n, label]) => [h("dt", {}, label), h("dd", { dataset: { field: n }, tabindex: n === "command" ? "0" : null },
        n === "status" ? h("span", { class: `badge s-${record.status}` }, record.status) : value(n, record))]));
    cancel.hidden = TERMINAL.has(record.status);
  }

  async function reload() {
    record = await call("GET", path);
    render();
  }

  cancel.addEventListener("click", () => {
    dialog.returnValue = "";  // Escape keeps the last answer otherwise
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "yes") { cancel.focus(); return; }
    try {
      record = await call("POST", `${path}/cancel`);
      render();
      announce("Cancellation requested");
    } catch (e) { session.fail(e); }
  });

  const seen = { stdout: false, stderr: false };
  async function onOutput(event) {
    if (!seen[event.stream] && event.offset > 0) {
      // The stream's first events were trimmed: what came before them, from /output.
      seen[event.stream] = true;
      output.prefix(event.stream, await text(`${path}/output?stream=${event.stream}`), event.offset);
    }
    seen[event.stream] = true;
    output.add(event.stream, event.offset, event.data);
  }

  let ended = false;
  let queue = Promise.resolve();
  (async () => {
    await reload();
    await follow(`${path}/events`, {
      signal,
      ended: () => ended,
      onEvent: ({ type, data }) => {
        queue = queue.then(async () => {
          if (type === "output") return onOutput(data);
          timeline.append(timelineItem(data));
          if (record && advances(record.status, type) && type !== "accepted") {
            record.status = type;
            // The queue position moves as others start; it is gone once the evaluation is not queued.
            record.queue_position = type === "queued" ? data.position ?? record.queue_position : null;
            render();
          }
          if (TERMINAL.has(type)) {
            ended = true;
            await reload();
            announce(`Evaluation ${type}`);
          }
        });
      },
    });
    await queue;
    ended = true;
    // Nothing came as events (trimmed, or expired): whatever /output still has.
    for (const stream of ["stdout", "stderr"]) {
      if (!seen[stream]) output.prefix(stream, await text(`${path}/output?stream=${stream}`), Infinity);
    }
    main.querySelector("h1").dataset.ended = "true";
  })().catch((e) => { if (!signal.aborted) session.fail(e); });
}
