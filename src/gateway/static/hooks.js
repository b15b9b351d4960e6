// The account's webhooks, in the account panel: registering an endpoint URL for job events,
// its signing secret shown once with a copy button, the list (enabled or disabled), sending a
// test event, the latest delivery attempts, and deleting one.
// Webhooks are managed with the login only: the gateway refuses an API key here (403).

import { UNAVAILABLE, UNREACHABLE, api, errorText, expired, token } from "./api.js";
import { $, el, notify, showProblem, timeEl } from "./dom.js";
import { confirmRemoval } from "./removal.js";
import { secretBox } from "./secretbox.js";

const EVENT_WORDS = { "job.done": "done", "job.failed": "failed", "job.expired": "expired" };
let hooksRequest = 0; // only the answer to the latest GET /webhooks is shown
const secret = secretBox("hook", "secret");

// ---- the list ----

export async function refreshHooks() {
  const jwt = token();
  if (!jwt) return;
  const request = ++hooksRequest;
  const current = () => request === hooksRequest && token() === jwt;
  const note = $("#hooks-note");
  try {
    const response = await api("GET", "/webhooks");
    if (!current()) return;
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      note.textContent = `Could not load your webhooks: ${await errorText(response)}`;
      return;
    }
    showHooks((await response.json()).webhooks || []);
  } catch (_) {
    if (current()) note.textContent = "Could not reach the server to load your webhooks.";
  }
}

function showHooks(hooks) {
  $("#hooks-note").textContent = hooks.length ? "" : "No webhooks yet.";
  $("#hooks").replaceChildren(...hooks.map(hookRow));
}

function hookRow(hook) {
  const events = hook.events.map((event) => EVENT_WORDS[event] || event).join(", ");
  const state = hook.enabled
    ? ["Enabled. "]
    : [el("strong", { text: "Disabled" }), ` (${hook.disabled_reason || "it kept failing"}). `];
  const facts = el("p", { class: "key-facts" }, [
    ...state, `When a conversion is ${events}. Created `, timeEl(hook.created_at),
  ]);
  const test = el("button", { type: "button", class: "secondary", text: "Send a test" });
  const history = el("button", { type: "button", class: "secondary", text: "Deliveries" });
  const remove = el("button", { type: "button", class: "danger-outline", text: "Delete" });
  test.disabled = !hook.enabled;
  test.setAttribute("aria-label", `Send a test event to ${hook.url}`);
  history.setAttribute("aria-label", `Deliveries to ${hook.url}`);
  history.setAttribute("aria-expanded", "false");
  remove.setAttribute("aria-label", `Delete the webhook ${hook.url}`);
  const attempts = el("ul", { class: "hook-deliveries", "aria-label": `Deliveries to ${hook.url}` });
  attempts.hidden = true;
  const buttons = el("div", { class: "key-confirm" }, [test, history, remove]);
  const row = el("li", { class: "key", "data-hook-id": hook.id }, [
    el("div", { class: "key-about" }, [el("span", { class: "key-name", text: hook.url }), facts]),
    buttons, attempts,
  ]);
  test.addEventListener("click", () => sendTest(hook, test, attempts, history));
  history.addEventListener("click", () => toggleDeliveries(hook, attempts, history));
  remove.addEventListener("click", () => confirmDelete(row, hook, buttons));
  return row;
}

async function sendTest(hook, button, attempts, history) {
  button.disabled = true;
  try {
    const response = await api("POST", `/webhooks/${encodeURIComponent(hook.id)}/test`);
    if (response.status === 401) {
      expired();
      return;
    }
    if (response.status === 202) {
      notify(`A test event is on its way to ${hook.url}.`, "ok");
      if (!attempts.hidden) setTimeout(() => loadDeliveries(hook, attempts), 1500);
      return;
    }
    const text = await errorText(response);
    notify(response.status === 503 ? UNAVAILABLE : `The test was not sent: ${text}`, "error");
  } catch (_) {
    notify(UNREACHABLE, "error");
  } finally {
    button.disabled = false;
    history.disabled = false;
  }
}

async function toggleDeliveries(hook, attempts, button) {
  const open = attempts.hidden;
  attempts.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) await loadDeliveries(hook, attempts);
}

async function loadDeliveries(hook, attempts) {
  attempts.replaceChildren(el("li", { class: "hint", text: "Loading…" }));
  try {
    const response = await api("GET", `/webhooks/${encodeURIComponent(hook.id)}/deliveries`);
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      attempts.replaceChildren(el("li", { text: `Could not load: ${await errorText(response)}` }));
      return;
    }
    const { deliveries } = await response.json();
    attempts.replaceChildren(...(deliveries.length ? deliveries.map(deliveryRow)
      : [el("li", { class: "hint", text: "Nothing sent yet." })]));
  } catch (_) {
    attempts.replaceChildren(el("li", { text: UNREACHABLE }));
  }
}

function deliveryRow(attempt) {
  const outcome = attempt.ok ? `answered ${attempt.status}` : attempt.error || "failed";
  const seconds = attempt.duration == null ? "" : ` in ${attempt.duration.toFixed(2)} s`;
  return el("li", { class: attempt.ok ? "hook-ok" : "hook-failed" }, [
    timeEl(attempt.at), ` ${attempt.type}, attempt ${attempt.attempt}: ${outcome}${seconds}`,
  ]);
}

function confirmDelete(row, hook, buttons) {
  confirmRemoval(row, buttons, buttons.lastElementChild, {
    verb: "Delete", doing: "Deleting…", label: `Confirm deleting ${hook.url}`,
    question: "No more events are sent to it.",
    path: `/webhooks/${encodeURIComponent(hook.id)}`,
    list: "#hooks", note: "#hooks-note", empty: "No webhooks yet.",
    done: `The webhook ${hook.url} is deleted.`, failed: "Could not delete the webhook",
    focus: "#hook-url",
  });
}

// ---- registering an endpoint, and its secret shown once ----

async function createHook(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const problem = $("#hook-problem");
  if (!form.reportValidity()) return;
  const events = [...form.querySelectorAll("input[name=hook-event]:checked")].map((box) => box.value);
  if (!events.length) {
    showProblem(problem, "Tick at least one event.");
    return;
  }
  const button = $("#hook-create");
  button.disabled = true;
  showProblem(problem, "Registering the webhook…", "info");
  try {
    const response = await api("POST", "/webhooks", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ url: $("#hook-url").value.trim(), events }),
    });
    if (response.status === 201) {
      const hook = await response.json();
      showProblem(problem, "");
      form.reset();
      showHookSecret(hook);
      refreshHooks();
      return;
    }
    if (response.status === 401) {
      expired();
      return;
    }
    const text = await errorText(response);
    showProblem(problem, response.status === 503 ? UNAVAILABLE : `The webhook was not registered: ${text}`);
  } catch (_) {
    showProblem(problem, UNREACHABLE);
  } finally {
    button.disabled = false;
  }
}

function showHookSecret(hook) {
  secret.show(hook.secret, `Copy the signing secret of ${hook.url} now: it is not shown again.`);
}

export function forgetHookSecret() {
  secret.forget();
}

// Logged out: nothing of the webhooks stays on the page.
export function clearHooks() {
  hooksRequest += 1;
  forgetHookSecret();
  $("#hooks").replaceChildren();
  $("#hooks-note").textContent = "";
  showProblem($("#hook-problem"), "");
  $("#hook-form").reset();
}

export function wireHooks() {
  $("#hook-form").addEventListener("submit", createHook);
  $("#hook-copy").addEventListener("click", secret.copy);
  $("#hook-secret-done").addEventListener("click", () => {
    forgetHookSecret();
    $("#hook-url").focus();
  });
}
