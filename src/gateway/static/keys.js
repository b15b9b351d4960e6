// The account's API keys, in the account panel: creating one (name, what it may do, expiry),
// its secret shown once with a copy button, the list of keys and revoking one.
// Keys are managed with the login only: the gateway refuses a key here (403).

import { UNAVAILABLE, UNREACHABLE, api, errorText, expired, saysWhenToRetry, token } from "./api.js";
import { $, el, notify, showProblem, timeEl } from "./dom.js";
import { sentence } from "./format.js";
import { confirmRemoval } from "./removal.js";
import { secretBox } from "./secretbox.js";

const SCOPE_WORDS = { upload: "upload", read: "read and download", delete: "delete" };
let keysRequest = 0; // only the answer to the latest GET /tokens is shown
const secret = secretBox("key", "key");

// ---- the list ----

export async function refreshKeys() {
  const jwt = token();
  if (!jwt) return;
  const request = ++keysRequest;
  const current = () => request === keysRequest && token() === jwt;
  const note = $("#keys-note");
  try {
    const response = await api("GET", "/tokens");
    if (!current()) return;
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      note.textContent = `Could not load your API keys: ${await errorText(response)}`;
      return;
    }
    showKeys((await response.json()).tokens || []);
  } catch (_) {
    if (current()) note.textContent = "Could not reach the server to load your API keys.";
  }
}

function showKeys(keys) {
  $("#keys-note").textContent = keys.length ? "" : "No API keys yet.";
  $("#keys").replaceChildren(...keys.map(keyRow));
}

function when(label, iso, otherwise) {
  return iso ? [`${label} `, timeEl(iso)] : [otherwise];
}

function keyRow(key) {
  const scopes = key.scopes.map((scope) => SCOPE_WORDS[scope] || scope).join(", ");
  const facts = el("p", { class: "key-facts" }, [
    `May ${scopes}. `,
    ...when("Created", key.created_at, ""), " · ",
    ...when("last used", key.last_used_at, "never used"), " · ",
    ...when("expires", key.expires_at, "never expires"),
  ]);
  const revoke = el("button", { type: "button", class: "danger-outline", text: "Revoke" });
  const row = el("li", { class: "key", "data-key-id": key.id }, [
    el("div", { class: "key-about" }, [el("span", { class: "key-name", text: key.name }), facts]),
    revoke,
  ]);
  revoke.setAttribute("aria-label", `Revoke ${key.name}`);
  revoke.addEventListener("click", () => confirmRevoke(row, key));
  return row;
}

function confirmRevoke(row, key) {
  const button = row.lastElementChild;
  confirmRemoval(row, button, button, {
    verb: "Revoke", doing: "Revoking…", label: `Confirm revoking ${key.name}`,
    question: "Scripts using it stop working at once.",
    path: `/tokens/${encodeURIComponent(key.id)}`,
    list: "#keys", note: "#keys-note", empty: "No API keys yet.",
    done: `The API key “${key.name}” is revoked: it no longer works.`,
    failed: "Could not revoke the key", focus: "#key-name",
  });
}

// ---- creating a key, and its secret shown once ----

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const problem = $("#key-problem");
  if (!form.reportValidity()) return;
  const scopes = [...form.querySelectorAll("input[name=key-scope]:checked")].map((box) => box.value);
  if (!scopes.length) {
    showProblem(problem, "Tick at least one thing the key may do.");
    return;
  }
  const days = $("#key-expiry").value;
  const body = { name: $("#key-name").value.trim(), scopes };
  if (days) body.expires_in_days = Number(days);
  const button = $("#key-create");
  button.disabled = true;
  showProblem(problem, "Creating the key…", "info");
  try {
    const response = await api("POST", "/tokens", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status === 201) {
      const key = await response.json();
      showProblem(problem, "");
      form.reset();
      showSecret(key);
      refreshKeys();
      return;
    }
    if (response.status === 401) {
      expired();
      return;
    }
    const text = await errorText(response);
    if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
      showProblem(problem, sentence(text));
    } else if (response.status === 503) {
      showProblem(problem, UNAVAILABLE);
    } else {
      showProblem(problem, `The key was not created: ${text}`);
    }
  } catch (_) {
    showProblem(problem, UNREACHABLE);
  } finally {
    button.disabled = false;
  }
}

function showSecret(key) {
  secret.show(key.secret, `Copy the key “${key.name}” now: it is not shown again.`);
}

// The secret leaves the page as soon as the person is done with it (or the panel closes).
export function forgetSecret() {
  secret.forget();
}

// Logged out: nothing of the keys stays on the page.
export function clearKeys() {
  keysRequest += 1;
  forgetSecret();
  $("#keys").replaceChildren();
  $("#keys-note").textContent = "";
  showProblem($("#key-problem"), "");
  $("#key-form").reset();
}

export function wireKeys() {
  $("#key-form").addEventListener("submit", createKey);
  $("#key-copy").addEventListener("click", secret.copy);
  $("#key-secret-done").addEventListener("click", () => {
    forgetSecret();
    $("#key-name").focus();
  });
}
