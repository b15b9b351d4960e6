// Removing one item of a listed panel (an API key, a webhook): its button gives way to a question
// with a confirming and a keeping button (Escape keeps; the keeping one has the focus), then the
// DELETE, and the row leaves the list. A 404 is as good as done: it was removed elsewhere.

import { UNAVAILABLE, UNREACHABLE, api, errorText, expired } from "./api.js";
import { $, el, notify } from "./dom.js";

// what: {
//   verb ("Revoke"), doing ("Revoking…"), label (the group's aria-label), question,
//   path (of the DELETE), list and note (selectors of the list and of its note), empty (the
//   note once the list is empty), done (the notice), failed ("Could not revoke the key"),
//   focus (selector of what gets the focus once the row is gone)
// }
// replaced: the element the question takes the place of (and gives back on "Keep");
// refocus: what gets the focus back then.
export function confirmRemoval(row, replaced, refocus, what) {
  const yes = el("button", { type: "button", class: "danger", text: what.verb });
  const keep = el("button", { type: "button", class: "secondary", text: "Keep" });
  const group = el("div", { class: "key-confirm", role: "group", "aria-label": what.label }, [
    el("span", { class: "key-question", text: what.question }), yes, keep,
  ]);
  replaced.replaceWith(group);
  const back = () => {
    group.replaceWith(replaced);
    refocus.focus();
  };
  keep.addEventListener("click", back);
  group.addEventListener("keydown", (event) => {
    if (event.key === "Escape") back();
  });
  yes.addEventListener("click", () => remove(row, group, back, what));
  keep.focus();
}

async function remove(row, group, back, what) {
  group.querySelectorAll("button").forEach((button) => { button.disabled = true; });
  $(".key-question", group).textContent = what.doing;
  try {
    const response = await api("DELETE", what.path);
    if (response.status === 204 || response.status === 404) {
      row.remove();
      if (!$(what.list).children.length) $(what.note).textContent = what.empty;
      notify(what.done, "ok");
      $(what.focus).focus();
      return;
    }
    if (response.status === 401) {
      expired();
      return;
    }
    const text = await errorText(response);
    back();
    notify(response.status === 503 ? UNAVAILABLE : `${what.failed}: ${text}`, "error");
  } catch (_) {
    back();
    notify(UNREACHABLE, "error");
  }
}
