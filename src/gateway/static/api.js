// The gateway's HTTP API: the login kept in this tab, authorized requests, the server's messages.

const TOKEN_KEY = "mp3converter.token";
const EMAIL_KEY = "mp3converter.email";
const VERIFIED_KEY = "mp3converter.verified"; // confirmed in this tab since the login

export const UNREACHABLE = "Could not reach the server. Check your connection and try again.";
export const UNAVAILABLE = "The service is unavailable right now. Try again in a moment.";

let whenExpired = () => {};

// ---- the login kept in this tab (sessionStorage) ----

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signedInEmail() {
  return sessionStorage.getItem(EMAIL_KEY);
}

export function keepLogin(jwt, email) {
  sessionStorage.setItem(TOKEN_KEY, jwt);
  sessionStorage.setItem(EMAIL_KEY, email);
  sessionStorage.removeItem(VERIFIED_KEY);
}

export function forgetLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EMAIL_KEY);
  sessionStorage.removeItem(VERIFIED_KEY);
}

// Whether the address was confirmed since the login (the token says how it was at the login).
export function confirmedHere() {
  return Boolean(sessionStorage.getItem(VERIFIED_KEY));
}

export function markConfirmed() {
  sessionStorage.setItem(VERIFIED_KEY, "1");
}

// The login token's claims, read (not checked: the server does that) to adapt the page.
export function claims() {
  try {
    const part = (token() || "").split(".")[1] || "";
    const bytes = Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) || {};
  } catch (_) {
    return {};
  }
}

// What the page does when the server no longer accepts the login (set once, by app.js).
export function onExpired(handler) {
  whenExpired = handler;
}

export function expired() {
  whenExpired();
}

// ---- requests ----

export function basicAuth(email, password) {
  const bytes = new TextEncoder().encode(`${email}:${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

// credentials: "omit" keeps the browser from ever showing its own login dialog.
export function api(method, path, { headers = {}, body, auth = true } = {}) {
  const all = { ...headers };
  if (auth) all.Authorization = `Bearer ${token()}`;
  return fetch(path, { method, headers: all, body, credentials: "omit", cache: "no-store" });
}

// ---- what the server said ----

export async function errorText(response) {
  const body = await response.text().catch(() => "");
  try {
    const parsed = JSON.parse(body);
    if (parsed && parsed.error) return parsed.error;
  } catch (_) { /* not JSON */ }
  return body.trim() || `${response.status} ${response.statusText}`;
}

// A 429 (a rate limit) or a busy 503 comes with Retry-After and says how long to wait.
export function saysWhenToRetry(status, retryAfter) {
  return status === 429 || (status === 503 && Boolean(retryAfter));
}
