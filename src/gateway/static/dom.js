// Building the page's elements and saying things on it: the notice and a form's problem line.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "role" || key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

export function timeEl(iso) {
  return el("time", { dateTime: iso, text: new Date(iso).toLocaleString() });
}

// The page's notice under the header; an empty text hides it.
export function notify(text, kind = "info") {
  const notice = $("#notice");
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = !text;
}

export function showProblem(node, text, kind = "error") {
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = !text;
}
