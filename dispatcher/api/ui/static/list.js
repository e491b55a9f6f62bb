// The list: newest first, a status filter, pages by the API's cursor, and live rows: the page
// follows GET /v1/events from where the stream was before the first page was read, so no
// change between the two is missed.

import { call, evaluationPath, follow } from "./api.js";
import { announce, clear, h } from "./dom.js";
import { STATUSES, TERMINAL, advances, duration, labels, when } from "./format.js";

const PAGE = 500;
// New evaluations whose records are fetched at once, at most; more in a burst show on a reload.
const FETCH_NEW_MAX = 50;

export function listView(main, { session, signal, query }) {
  const status = STATUSES.includes(query.get("status")) ? query.get("status") : "";
  const rows = new Map();  // qualified id -> {tr, cells, record}
  const tbody = h("tbody");
  const more = h("button", { type: "button", id: "load-more", hidden: true }, "Load more");
  const count = h("p", { id: "row-count", class: "muted" });
  const filter = h("select", { id: "status-filter", name: "status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  filter.addEventListener("change", () => {
    location.hash = filter.value ? `#/?status=${encodeURIComponent(filter.value)}` : "#/";
  });
  let cursor = null;
  const pending = new Map();  // id -> events that came while its record was being fetched

  clear(main).append(
    h("h1", { tabindex: "-1" }, "Evaluations"),
    h("div", { class: "controls" },
      h("label", { for: "status-filter" }, "Status"), filter,
      h("a", { href: "#/new", class: "button" }, "Submit an evaluation")),
    h("table", { id: "evaluations" },
      h("caption", {}, status ? `Evaluations with status ${status}, newest first`
        : "Evaluations, newest first"),
      h("thead", {}, h("tr", {},
        ["Evaluation", "Status", "Exit code", "Duration", "Image", "Labels", "Created"]
          .map((name) => h("th", { scope: "col" }, name)))),
      tbody),
    count, more);

  const key = (item) => session.idFor(item);

  function row(record) {
    const cells = {
      status: h("td", { class: "status" }),
      exit: h("td", { class: "num exit" }),
      duration: h("td", { class: "num duration" }),
    };
    const id = key(record);
    const tr = h("tr", { dataset: { id } },
      h("th", { scope: "row" }, h("a", { href: `#/evaluations/${encodeURIComponent(id)}` }, id)),
      cells.status, cells.exit, cells.duration,
      h("td", {}, record.image), h("td", { class: "labels" }, labels(record.labels)),
      h("td", {}, when(record.created_at)));
    const entry = { tr, cells, record };
    paint(entry);
    return entry;
  }

  function paint({ cells, record }) {
    const queued = record.status === "queued" && record.queue_position ? ` #${record.queue_position}` : "";
    cells.status.replaceChildren(h("span", { class: `badge s-${record.status}` }, record.status + queued));
    if (record.verified && TERMINAL.has(record.status)) {
      cells.status.append(h("span", { class: "verified", title: "verified by the kubelet or the process's wait status" }, " ✓ verified"));
    }
    cells.exit.textContent = record.exit_code ?? "";
    cells.duration.textContent = duration(record.duration_seconds);
  }

  function add(records, { top = false } = {}) {
    const started = performance.now();
    const fragment = document.createDocumentFragment();
    for (const record of records) {
      if (rows.has(key(record))) continue;
      const entry = row(record);
      rows.set(key(record), entry);
      fragment.append(entry.tr);
    }
    if (top) tbody.prepend(fragment); else tbody.append(fragment);
    performance.measure("crucible:render-rows", { start: started, end: performance.now(), detail: records.length });
    count.textContent = `${rows.size} shown`;
  }

  async function page() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (status) params.set("status", status);
    if (cursor) params.set("cursor", cursor);
    const body = await call("GET", `/v1/evaluations?${params}`);
    add(body.items);
    cursor = body.next_cursor;
    more.hidden = !cursor;
  }

  more.addEventListener("click", () => page().catch(session.fail));

  function update(entry, event) {
    const record = entry.record;
    if (!advances(record.status, event.type)) return;
    if (event.type !== "accepted") {
      record.status = event.type;
      record.queue_position = event.type === "queued" ? event.position ?? null : null;
    }
    for (const name of ["exit_code", "duration_seconds", "verified", "job_name"]) {
      if (event[name] !== undefined) record[name] = event[name];
    }
    paint(entry);
    if (TERMINAL.has(event.type)) announce(`${key(event)} ${event.type}`);
  }

  async function arrived(event) {
    const id = key(event);
    const entry = rows.get(id);
    if (entry) { update(entry, event); return; }
    if (pending.has(id)) { pending.get(id).push(event); return; }
    if (status && event.type !== status) return;
    if (pending.size >= FETCH_NEW_MAX) return;
    // Events that come while the record is on its way are applied to it after.
    pending.set(id, []);
    try {
      const record = await call("GET", evaluationPath(id));
      if (!status || record.status === status) add([record], { top: true });
    } catch {
      // Gone (expired) or not ours: nothing to show.
    } finally {
      const later = pending.get(id);
      pending.delete(id);
      if (rows.has(id)) for (const e of later) update(rows.get(id), e);
    }
  }

  (async () => {
    const { last_event_id: head } = await call("GET", "/v1/events");
    await page();
    main.querySelector("h1").dataset.ready = "true";
    await follow("/v1/events", {
      lastEventId: head,
      signal,
      onEvent: (message) => { arrived(message.data); },
      onOpen: () => { tbody.closest("table").dataset.live = "true"; },
    });
  })().catch((e) => { if (!signal.aborted) session.fail(e); });
}
