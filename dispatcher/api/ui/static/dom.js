// Building the page from data safely: every piece of data goes in as text (textContent or an
// attribute set through the DOM), never as HTML. Nothing here parses markup.

/** An element: h("a", {href: "#/", class: "x"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** Says something to screen readers (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A change the next frame, so that the same text twice is still read.
  requestAnimationFrame(() => { region.textContent = text; });
}
