// The account: logging in, creating one, confirming its address, the header's storage used,
// the account panel (with its API keys, keys.js, and webhooks, hooks.js) and deleting the account.

import {
  UNAVAILABLE, UNREACHABLE, api, basicAuth, claims, confirmedHere, errorText, expired, keepLogin,
  markConfirmed, saysWhenToRetry, signedInEmail, token,
} from "./api.js";
import { $, el, notify, showProblem } from "./dom.js";
import { STATUS_LABELS, humanHours, quotaSize, sentence } from "./format.js";
import { clearHooks, forgetHookSecret, refreshHooks, wireHooks } from "./hooks.js";
import { clearKeys, forgetSecret, refreshKeys, wireKeys } from "./keys.js";

// Where GET /verify sends a browser (the hash), and what to tell the person.
const VERIFY_MESSAGES = {
  "#verified": ["Your email address is confirmed: you will get an email when each conversion finishes.", "ok"],
  "#verify-expired": ["This confirmation link has expired. Log in and choose “Send the link again” to get a new one.", "error"],
  "#verify-failed": ["This confirmation link is not valid. Open the link from the most recent email exactly as it is.", "error"],
  "#verify-unavailable": ["Your email could not be confirmed right now. Open the link again in a moment.", "error"],
};

// What the whole page does on logging in and out (given by app.js, which owns every part).
let session = { signedIn() {}, signOut() {} };
let accountRequest = 0; // only the answer to the latest GET /account is shown

// ---- logging in, creating an account ----

function credentials() {
  const form = $("#login-form");
  if (!form.reportValidity()) return null;
  return { email: $("#email").value.trim(), password: $("#password").value };
}

async function register() {
  const creds = credentials();
  if (!creds) return;
  notify("Creating your account…");
  try {
    const response = await api("POST", "/register", {
      auth: false,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(creds),
    });
    if (response.status === 201) {
      notify(`Account created for ${creds.email}. Check your inbox to confirm your email, then log in.`, "ok");
    } else if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
      notify(sentence(await errorText(response)), "error");
    } else if (response.status === 503) {
      notify(UNAVAILABLE, "error");
    } else {
      notify(`Could not create the account: ${await errorText(response)}`, "error");
    }
  } catch (_) {
    notify(UNREACHABLE, "error");
  }
}

async function login(event) {
  event.preventDefault();
  const creds = credentials();
  if (!creds) return;
  notify("Logging in…");
  try {
    const response = await api("POST", "/login", {
      auth: false,
      headers: { Authorization: basicAuth(creds.email, creds.password) },
    });
    if (response.status === 200) {
      keepLogin((await response.text()).trim(), creds.email);
      $("#password").value = "";
      notify("");
      session.signedIn();
    } else if (response.status === 401) {
      notify("Wrong email or password.", "error");
    } else if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
      notify(sentence(await errorText(response)), "error");
    } else if (response.status === 503) {
      notify(UNAVAILABLE, "error");
    } else {
      notify(`Could not log in: ${await errorText(response)}`, "error");
    }
  } catch (_) {
    notify(UNREACHABLE, "error");
  }
}

// ---- confirming the address ----

function showVerifyBanner() {
  $("#verify-banner").hidden = !(claims().verified === false && !confirmedHere());
}

async function resendVerification() {
  const button = $("#resend");
  button.disabled = true;
  notify("Sending a new confirmation link…");
  try {
    const response = await api("POST", "/verify/resend");
    if (response.status === 200) {
      notify(`We sent a new confirmation link to ${signedInEmail() || "your address"}. Check your inbox.`, "ok");
    } else if (response.status === 409) {
      markConfirmed();
      showVerifyBanner();
      notify("Your email address is already confirmed.", "ok");
    } else if (response.status === 401) {
      expired();
    } else if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
      notify(sentence(await errorText(response)), "error");
    } else if (response.status === 503) {
      notify("The link could not be sent right now. Try again in a moment.", "error");
    } else {
      notify(`Could not send the link: ${await errorText(response)}`, "error");
    }
  } catch (_) {
    notify(UNREACHABLE, "error");
  } finally {
    button.disabled = false;
  }
}

// After GET /verify the browser lands on /#verified (or #verify-…): say what happened.
export function verifyOutcome() {
  const hash = window.location.hash;
  const message = VERIFY_MESSAGES[hash];
  if (!message) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  if (hash === "#verified") {
    markConfirmed();
    showVerifyBanner();
  }
  notify(...message);
}

// ---- the header and the account card, logged in or out ----

export function showSignedIn() {
  $("#who-email").textContent = signedInEmail() || "";
  showVerifyBanner();
  $("#who").hidden = false;
  $("#account").hidden = true;
  $("#converter").hidden = false;
}

export function showSignedOut() {
  accountRequest += 1;
  showAccountPanel(false);
  clearKeys();
  clearHooks();
  $("#usage").hidden = true;
  $("#who").hidden = true;
  $("#converter").hidden = true;
  $("#account").hidden = false;
}

// ---- storage used and the account panel ----

export async function refreshAccount() {
  const jwt = token();
  if (!jwt) return;
  const request = ++accountRequest;
  const current = () => request === accountRequest && token() === jwt;
  try {
    const response = await api("GET", "/account");
    if (!current()) return;
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      const text = await errorText(response);
      if (current()) showProblem($("#account-problem"), `Could not load your account: ${text}`);
      return;
    }
    const info = await response.json();
    if (current()) showAccount(info);
  } catch (_) {
    if (current()) showProblem($("#account-problem"), "Could not reach the server to load your account; it is retried with the next change.");
  }
}

function showAccount(info) {
  const used = info.usage.bytes;
  const quota = info.quota.bytes;
  const meter = $("#usage-meter");
  meter.max = quota || 1;
  meter.low = meter.max * 0.8;
  meter.high = meter.max * 0.95;
  meter.value = Math.min(used, meter.max);
  $("#usage-text").textContent = `${quotaSize(used)} of ${quotaSize(quota)}`;
  $("#usage").title = "Storage used: videos waiting or converting, plus the MP3s kept";
  $("#usage").hidden = false;

  showProblem($("#account-problem"), "");
  $("#account-email").textContent = info.email;
  $("#account-verified").textContent = info.verified
    ? "Confirmed: you get an email when each conversion finishes"
    : "Not confirmed yet: open the link we emailed you to be notified";
  const percent = quota ? Math.min(100, Math.round((used / quota) * 100)) : 100;
  $("#account-storage").textContent = `${quotaSize(used)} of ${quotaSize(quota)} (${percent}%)`;
  $("#account-active").textContent = `${info.usage.active_jobs} of at most ${info.quota.active_jobs} at a time`;
  const counts = Object.entries(info.jobs || {})
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${count} ${(STATUS_LABELS[status] || status).toLowerCase()}`);
  $("#account-jobs").textContent = counts.length ? counts.join(", ") : "none yet";
  $("#account-retention").textContent = `${humanHours(info.mp3_retention_hours)} after each conversion`;
  if (info.verified && !confirmedHere()) {
    markConfirmed();
    showVerifyBanner();
  }
}

function showAccountPanel(open) {
  $("#account-panel").hidden = !open;
  $("#account-toggle").setAttribute("aria-expanded", String(open));
  if (!open) {
    cancelAccountDeletion(false);
    forgetSecret();
    forgetHookSecret();
  }
}

function toggleAccountPanel() {
  const open = $("#account-panel").hidden;
  showAccountPanel(open);
  if (open) {
    refreshAccount();
    refreshKeys();
    refreshHooks();
    $("#account-panel-title").focus();
  }
}

// ---- deleting the account ----

// The password field exists only while the person is deleting the account.
function startAccountDeletion() {
  const input = el("input", {
    id: "delete-password", name: "delete-password", type: "password",
    autocomplete: "current-password", required: true,
  });
  const form = el("form", { id: "delete-account-form", class: "account-form" }, [
    el("label", { htmlFor: "delete-password", text: "Your password, to confirm" }),
    input,
    el("p", { id: "delete-account-problem", class: "form-problem", role: "alert", hidden: true }),
    el("div", { class: "actions" }, [
      el("button", { type: "submit", class: "danger", text: "Delete my account and all my files" }),
      el("button", { id: "delete-account-cancel", type: "button", class: "secondary", text: "Cancel" }),
    ]),
  ]);
  form.addEventListener("submit", deleteAccount);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancelAccountDeletion(true);
  });
  $("#delete-account-cancel", form).addEventListener("click", () => cancelAccountDeletion(true));
  $("#account-delete .actions").hidden = true;
  $("#account-delete").append(form);
  input.focus();
}

function cancelAccountDeletion(refocus) {
  const form = $("#delete-account-form");
  if (form) form.remove();
  $("#account-delete .actions").hidden = false;
  if (refocus) $("#account-delete-start").focus();
}

async function deleteAccount(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (!form.reportValidity()) return;
  const input = $("#delete-password", form);
  const problem = $("#delete-account-problem", form);
  const buttons = [...form.querySelectorAll("button")];
  const email = signedInEmail() || "your account";
  const say = (text) => {
    showProblem(problem, text);
    input.focus();
  };
  buttons.forEach((button) => { button.disabled = true; });
  showProblem(problem, "Deleting your account…", "info");
  try {
    const response = await api("DELETE", "/account", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password: input.value }),
    });
    input.value = "";
    if (response.status === 204) {
      session.signOut(`The account ${email} is deleted, with all its conversions and MP3s.`, "ok");
      return;
    }
    const text = await errorText(response);
    if (response.status === 401 && /password/i.test(text)) {
      say("Wrong password: your account was not deleted.");
    } else if (response.status === 401) {
      expired();
    } else if (response.status === 400) {
      say("Type your password to confirm: your account was not deleted.");
    } else if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
      say(`Your account was not deleted. ${sentence(text)}`);
    } else if (response.status === 503) {
      say("The service is unavailable right now; your account was not deleted. Try again in a moment.");
    } else {
      say(`Your account was not deleted: ${text}`);
    }
  } catch (_) {
    say("Could not reach the server; your account was not deleted. Check your connection and try again.");
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

// ---- wiring ----

// signedIn() and signOut(message, kind): what logging in and out do to the whole page.
export function wireAccount({ signedIn, signOut }) {
  session = { signedIn, signOut };
  $("#login-form").addEventListener("submit", login);
  $("#register").addEventListener("click", register);
  $("#account-toggle").addEventListener("click", toggleAccountPanel);
  $("#account-close").addEventListener("click", () => {
    showAccountPanel(false);
    $("#account-toggle").focus();
  });
  $("#account-delete-start").addEventListener("click", startAccountDeletion);
  $("#resend").addEventListener("click", resendVerification);
  wireKeys();
  wireHooks();
}
