// A secret shown once (an API key, a webhook's signing secret): shown with a copy button, then
// forgotten as soon as the person is done with it, the panel closes or they log out.
// The box's elements are #<prefix>-secret, -secret-value, -secret-note and #<prefix>-copied.

import { $ } from "./dom.js";

export function secretBox(prefix, what) {
  const part = (name) => $(`#${prefix}-${name}`);

  function show(secret, note) {
    const value = part("secret-value");
    value.value = secret;
    part("secret-note").textContent = note;
    part("copied").textContent = "";
    part("secret").hidden = false;
    value.focus();
    value.select();
  }

  function forget() {
    part("secret-value").value = "";
    part("copied").textContent = "";
    part("secret").hidden = true;
  }

  async function copy() {
    const value = part("secret-value");
    try {
      await navigator.clipboard.writeText(value.value);
    } catch (_) {
      value.select();
      if (!document.execCommand("copy")) {
        part("copied").textContent = `Could not copy: select the ${what} and copy it yourself.`;
        return;
      }
    }
    part("copied").textContent = "Copied to the clipboard.";
  }

  return { show, forget, copy };
}
