// How values are shown: statuses, times, durations, and output text made safe to look at.

export const STATUSES = [
  "accepted", "queued", "scheduled", "pending", "running",
  "completed", "failed", "timeout", "cancelled", "error",
];
export const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled", "error"]);
const RANK = new Map(STATUSES.map((s, i) => [s, TERMINAL.has(s) ? 100 : i]));

/** Whether a status event may replace what is shown: ends are sticky, no going back. */
export function advances(shown, next) {
  if (!shown) return true;
  if (TERMINAL.has(shown)) return TERMINAL.has(next);
  return RANK.get(next) >= RANK.get(shown);
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(2)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

// Terminal escapes (CSI, OSC, two-byte ESC sequences) are dropped; any other control character
// but tab and newline shows as its visible symbol, so output cannot restyle or hide itself.
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

export function plain(text) {
  return text.replace(ANSI, "").replace(CONTROL, (c) =>
    String.fromCharCode(c === "\x7f" ? 0x2421 : 0x2400 + c.charCodeAt(0)));
}

export function labels(map) {
  return Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}
