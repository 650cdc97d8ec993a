// Small DOM helpers: build elements, badges, the notice bar, keyed reconciliation, the
// confirmation dialog.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

export const label = (status) => status.replaceAll("_", " ");
export const badge = (status) => el("span", { class: `badge s-${status}`, "data-status": status, text: label(status) });

let noticeTimer = null;
export function notify(text, kind = "info") {
  const box = $("#notice");
  box.textContent = text;
  box.className = `notice ${kind}`;
  box.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && kind !== "error") noticeTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

// Keep an element whose signature is unchanged (and one being edited), rebuild the rest.
export function reconcile(container, items, key, signature, build) {
  const existing = new Map(Array.from(container.children, (node) => [node.dataset.key, node]));
  const wanted = items.map((item) => {
    const k = String(key(item));
    const sig = signature(item);
    let node = existing.get(k);
    const typing = document.activeElement?.matches("input, textarea, select");
    // An open editor or regenerate box (control.js) stays, focused or not, until it closes.
    const editing = node && ((typing && node.contains(document.activeElement)) || node.querySelector("[data-editing]"));
    if (!node || (node.dataset.sig !== sig && !editing)) {
      node = build(item);
      node.dataset.key = k;
      node.dataset.sig = sig;
    }
    return node;
  });
  const same = wanted.length === container.children.length && wanted.every((node, i) => container.children[i] === node);
  if (!same) container.replaceChildren(...wanted);
}

export function flash(node, ms = 2500) {
  node.classList.add("highlighted");
  setTimeout(() => node.classList.remove("highlighted"), ms);
}

// --- the confirmation dialog ------------------------------------------------------------------

// Resolves true only when the producer presses `go`; Escape, Cancel and Close are a no.
// With `go` null the dialog only shows (one Close button).
export function confirmDialog(title, body, go = "Go") {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-body").replaceChildren(...[].concat(body).filter(Boolean));
  const button = $("#confirm-go");
  button.hidden = !go;
  button.textContent = go || "";
  $("#confirm-cancel").textContent = go ? "Cancel" : "Close";
  dialog.returnValue = "";
  dialog.showModal();
  (go ? button : $("#confirm-cancel")).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "go"), { once: true });
  });
}
