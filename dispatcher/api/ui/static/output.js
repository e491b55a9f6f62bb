// Live output, stdout and stderr told apart. Text goes in as text only; each line shows its
// first LINE_CAP characters, with a button for the rest, so a 10 MB line cannot freeze the page,
// and at most LINES_MAX lines stay on the page (the oldest go; the full output is at /output).

import { h } from "./dom.js";
import { plain } from "./format.js";

const LINE_CAP = 2000;
const LINES_MAX = 5000;
const encoder = new TextEncoder();

export class OutputPane {
  constructor() {
    this.node = h("div", { id: "output", class: "output", role: "log", "aria-label": "Output", tabindex: "0" });
    this.open = { stdout: null, stderr: null };  // the line each stream is still writing
    this.bytes = { stdout: 0, stderr: 0 };  // bytes of each stream shown so far
    this.lines = 0;
  }

  get empty() { return this.lines === 0; }

  /** An output event: its `offset` and data, after whatever came before it on its stream. */
  add(stream, offset, data) {
    const have = this.bytes[stream];
    const raw = encoder.encode(data);
    if (offset + raw.length <= have) return;  // shown already
    const fresh = offset < have ? new TextDecoder().decode(raw.slice(have - offset)) : data;
    this.bytes[stream] = offset + raw.length;
    this.write(stream, fresh);
  }

  /** What came before the first event kept in the stream (it was trimmed), as full text. */
  prefix(stream, text, upto) {
    const bytes = encoder.encode(text).slice(this.bytes[stream], upto);
    if (!bytes.length) return;
    this.bytes[stream] += bytes.length;
    this.write(stream, new TextDecoder().decode(bytes));
  }

  write(stream, text) {
    const parts = text.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) this.open[stream] = null;
      if (part === "" && i === parts.length - 1) return;
      let line = this.open[stream];
      if (!line) line = this.open[stream] = this.newLine(stream);
      line.text += part;
      this.show(line);
    });
  }

  newLine(stream) {
    const body = h("span", { class: "text" });
    const node = h("div", { class: `line ${stream}`, dataset: { stream } },
      h("span", { class: "gutter", "aria-label": stream }, stream === "stderr" ? "err" : "out"), body);
    this.node.append(node);
    this.lines += 1;
    if (this.lines > LINES_MAX) {
      this.node.firstElementChild.remove();
      this.lines -= 1;
    }
    return { node, body, text: "", full: false, more: null };
  }

  show(line) {
    if (line.full || line.text.length <= LINE_CAP) {
      line.body.textContent = plain(line.text);
      return;
    }
    if (!line.more) {
      line.body.textContent = plain(line.text.slice(0, LINE_CAP));
      line.more = h("button", { type: "button", class: "more" });
      line.more.addEventListener("click", () => {
        line.full = true;
        line.body.textContent = plain(line.text);
        line.more.remove();
      });
      line.node.append(line.more);
    }
    line.more.textContent = `show all (${(line.text.length - LINE_CAP).toLocaleString()} more characters)`;
  }
}
