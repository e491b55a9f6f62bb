// The page: sign-in, then a view per location hash (#/ the list, #/new the form,
// #/evaluations/ID one evaluation). Each view gets an AbortSignal that ends its streams when
// the user goes elsewhere.

import { ApiError, call, forget, setToken, token } from "./api.js";
import { announce, clear, h } from "./dom.js";
import { detailView } from "./detail.js";
import { listView } from "./list.js";
import { submitView } from "./submit.js";

const main = document.getElementById("main");
let current = null;  // the AbortController of the view on screen

const session = {
  config: null,
  /** How this caller names an evaluation: an operator qualifies a tenant's (TENANT~ID). */
  idFor(item) {
    return item.tenant && this.config.tenant === null ? `${item.tenant}~${item.eval_id}` : item.eval_id;
  },
  fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      forget();
      signIn("The token was refused. Sign in again.");
      return;
    }
    const message = error instanceof ApiError && error.status === 404
      ? "No such evaluation (or not yours)." : `Something went wrong: ${error.message}`;
    main.append(h("p", { class: "error-summary", role: "alert" }, message));
  },
};

function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function route() {
  if (current) current.abort();
  if (!session.config) return;
  current = new AbortController();
  const hash = location.hash.slice(1) || "/";
  const [path, search = ""] = hash.split("?");
  const context = { session, signal: current.signal, navigate, query: new URLSearchParams(search) };
  const match = path.match(/^\/evaluations\/(.+)$/);
  if (match) detailView(main, { ...context, id: decodeURIComponent(match[1]) });
  else if (path === "/new") submitView(main, context);
  else listView(main, context);
  for (const link of document.querySelectorAll("nav a")) {
    const here = (link.id === "nav-new") === (path === "/new") && !match;
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const heading = main.querySelector("h1");
  if (heading) heading.focus({ preventScroll: true });
}

async function start() {
  try {
    session.config = await call("GET", "/v1/config");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const refused = token() !== "";
      forget();
      signIn(refused ? "The token was refused." : "");
      return false;
    }
    clear(main).append(h("p", { class: "error-summary", role: "alert" }, `The dispatcher did not answer: ${error.message}`));
    return false;
  }
  const who = document.getElementById("who");
  who.textContent = session.config.tenant ? `tenant ${session.config.tenant}` : "operator";
  who.hidden = false;
  document.getElementById("sign-out").hidden = !token();
  route();
  return true;
}

function signIn(problem) {
  if (current) current.abort();
  session.config = null;
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true, "aria-describedby": "token-hint token-error" });
  const error = h("p", { class: "error", id: "token-error", hidden: !problem }, problem || "");
  const form = h("form", { id: "sign-in", novalidate: true },
    h("label", { for: "token" }, "API token"),
    h("p", { class: "hint", id: "token-hint" }, "Kept in this browser tab only (sessionStorage), sent as a bearer token."),
    input, error, h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    input.value = "";
    if (!(await start())) announce("Sign-in failed");
  });
  document.getElementById("who").hidden = true;
  document.getElementById("sign-out").hidden = true;
  clear(main).append(h("h1", { tabindex: "-1" }, "Sign in"), form);
  input.focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  forget();
  signIn("");
});
window.addEventListener("hashchange", route);
start();
