// mp3converter web page: account, uploads with progress and conversion options, the live list
// of conversions, storage used against the quota, and deleting conversions or the whole account.
"use strict";

(() => {
  const TOKEN_KEY = "mp3converter.token";
  const EMAIL_KEY = "mp3converter.email";
  const VERIFIED_KEY = "mp3converter.verified"; // confirmed in this tab since the login
  const OPTIONS_KEY = "mp3converter.options"; // the remembered conversion options (localStorage)
  const COVER_TRIES = 3; // fetches of a job's cover picture that failed on the way, at most
  // Where GET /verify sends a browser (the hash), and what to tell the person.
  const VERIFY_MESSAGES = {
    "#verified": ["Your email address is confirmed: you will get an email when each conversion finishes.", "ok"],
    "#verify-expired": ["This confirmation link has expired. Log in and choose “Send the link again” to get a new one.", "error"],
    "#verify-failed": ["This confirmation link is not valid. Open the link from the most recent email exactly as it is.", "error"],
    "#verify-unavailable": ["Your email could not be confirmed right now. Open the link again in a moment.", "error"],
  };
  const POLL_MS = 2500;
  const STATUS_LABELS = {
    queued: "Queued", converting: "Converting", done: "Done", failed: "Failed", expired: "Expired",
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const rows = new Map(); // job_id -> {el, job, urlExpires, cover, coverUrl, coverTries}
  const gone = new Set(); // jobs deleted from this page: a list fetched before must not bring them back
  let pollTimer = null;
  let uploadChain = Promise.resolve();
  let statuses = null; // the jobs and their statuses at the last refresh: storage changes with them
  let accountRequest = 0; // only the answer to the latest GET /account is shown

  // ---- small helpers ----

  function el(tag, props = {}, children = []) {
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

  function humanSize(bytes) {
    if (bytes === null || bytes === undefined) return "—";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  // Sizes against the quota read "1.2 GB of 5 GB".
  function quotaSize(bytes) {
    return humanSize(bytes).replace(/\.0 /, " ");
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  function humanHours(hours) {
    if (hours >= 48 && Number.isInteger(hours / 24)) return plural(hours / 24, "day");
    if (hours >= 1) return plural(Math.round(hours * 10) / 10, "hour");
    return plural(Math.max(1, Math.round(hours * 60)), "minute");
  }

  function timeEl(iso) {
    return el("time", { dateTime: iso, text: new Date(iso).toLocaleString() });
  }

  function humanDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  // A point in the media as typed in the options: "0:01", "0:02.5", "1:02:03".
  function clockTime(seconds) {
    const millis = Math.round(seconds * 1000);
    const h = Math.floor(millis / 3_600_000);
    const m = Math.floor((millis % 3_600_000) / 60_000);
    const s = String(Math.floor((millis % 60_000) / 1000)).padStart(2, "0");
    const fraction = millis % 1000 ? `.${String(millis % 1000).padStart(3, "0").replace(/0+$/, "")}` : "";
    return `${h ? `${h}:${String(m).padStart(2, "0")}` : m}:${s}${fraction}`;
  }

  function qualityShort(quality) {
    return /^v\d$/.test(quality) ? quality.toUpperCase() : `${quality} kbit/s`;
  }

  function mp3Name(filename) {
    const base = (filename || "audio").split(/[\\/]/).pop();
    return `${base.replace(/\.[^.]*$/, "") || "audio"}.mp3`;
  }

  function notify(text, kind = "info") {
    const notice = $("#notice");
    notice.textContent = text;
    notice.dataset.kind = kind;
    notice.hidden = !text;
  }

  async function errorText(response) {
    const body = await response.text().catch(() => "");
    try {
      const parsed = JSON.parse(body);
      if (parsed && parsed.error) return parsed.error;
    } catch (_) { /* not JSON */ }
    return body.trim() || `${response.status} ${response.statusText}`;
  }

  // A 429 (a rate limit) or a busy 503 comes with Retry-After and says how long to wait.
  function saysWhenToRetry(status, retryAfter) {
    return status === 429 || (status === 503 && Boolean(retryAfter));
  }

  function sentence(text) {
    const trimmed = (text || "").trim().replace(/\.$/, "");
    return trimmed ? `${trimmed.charAt(0).toUpperCase()}${trimmed.slice(1)}.` : "";
  }

  function basicAuth(email, password) {
    const bytes = new TextEncoder().encode(`${email}:${password}`);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return `Basic ${btoa(binary)}`;
  }

  // credentials: "omit" keeps the browser from ever showing its own login dialog.
  function api(method, path, { headers = {}, body, auth = true } = {}) {
    const all = { ...headers };
    if (auth) all.Authorization = `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`;
    return fetch(path, { method, headers: all, body, credentials: "omit", cache: "no-store" });
  }

  // ---- account ----

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
        notify("The service is unavailable right now. Try again in a moment.", "error");
      } else {
        notify(`Could not create the account: ${await errorText(response)}`, "error");
      }
    } catch (_) {
      notify("Could not reach the server. Check your connection and try again.", "error");
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
        sessionStorage.setItem(TOKEN_KEY, (await response.text()).trim());
        sessionStorage.setItem(EMAIL_KEY, creds.email);
        sessionStorage.removeItem(VERIFIED_KEY);
        $("#password").value = "";
        notify("");
        signedIn();
      } else if (response.status === 401) {
        notify("Wrong email or password.", "error");
      } else if (saysWhenToRetry(response.status, response.headers.get("Retry-After"))) {
        notify(sentence(await errorText(response)), "error");
      } else if (response.status === 503) {
        notify("The service is unavailable right now. Try again in a moment.", "error");
      } else {
        notify(`Could not log in: ${await errorText(response)}`, "error");
      }
    } catch (_) {
      notify("Could not reach the server. Check your connection and try again.", "error");
    }
  }

  // The login token's claims, read (not checked: the server does that) to adapt the page.
  function claims() {
    try {
      const part = (sessionStorage.getItem(TOKEN_KEY) || "").split(".")[1] || "";
      const bytes = Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes)) || {};
    } catch (_) {
      return {};
    }
  }

  function showVerifyBanner() {
    $("#verify-banner").hidden = !(claims().verified === false && !sessionStorage.getItem(VERIFIED_KEY));
  }

  async function resendVerification() {
    const button = $("#resend");
    button.disabled = true;
    notify("Sending a new confirmation link…");
    try {
      const response = await api("POST", "/verify/resend");
      if (response.status === 200) {
        notify(`We sent a new confirmation link to ${sessionStorage.getItem(EMAIL_KEY) || "your address"}. Check your inbox.`, "ok");
      } else if (response.status === 409) {
        sessionStorage.setItem(VERIFIED_KEY, "1");
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
      notify("Could not reach the server. Check your connection and try again.", "error");
    } finally {
      button.disabled = false;
    }
  }

  // After GET /verify the browser lands on /#verified (or #verify-…): say what happened.
  function verifyOutcome() {
    const hash = window.location.hash;
    const message = VERIFY_MESSAGES[hash];
    if (!message) return;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    if (hash === "#verified") {
      sessionStorage.setItem(VERIFIED_KEY, "1");
      showVerifyBanner();
    }
    notify(...message);
  }

  function signedIn() {
    $("#who-email").textContent = sessionStorage.getItem(EMAIL_KEY) || "";
    showVerifyBanner();
    $("#who").hidden = false;
    $("#account").hidden = true;
    $("#converter").hidden = false;
    $("#jobs-note").textContent = "Loading…";
    statuses = null;
    poll(); // its first answer also loads the storage used (see render)
  }

  function signOut(message, kind = "info") {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EMAIL_KEY);
    sessionStorage.removeItem(VERIFIED_KEY);
    clearTimeout(pollTimer);
    pollTimer = null;
    for (const row of rows.values()) {
      const audio = $("audio", row.el);
      if (audio) audio.pause();
      dropCover(row);
    }
    rows.clear();
    gone.clear();
    statuses = null;
    accountRequest += 1;
    showAccountPanel(false);
    $("#usage").hidden = true;
    $("#jobs").replaceChildren();
    $("#uploads").replaceChildren();
    $("#who").hidden = true;
    $("#converter").hidden = true;
    $("#account").hidden = false;
    notify(message, kind);
    $("#email").focus();
  }

  function expired() {
    signOut("Your login has expired. Please log in again.", "error");
  }

  // ---- storage used, the account panel, deleting the account ----

  function showProblem(node, text, kind = "error") {
    node.textContent = text;
    node.dataset.kind = kind;
    node.hidden = !text;
  }

  async function refreshAccount() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    const request = ++accountRequest;
    const current = () => request === accountRequest && sessionStorage.getItem(TOKEN_KEY) === token;
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
    if (info.verified && !sessionStorage.getItem(VERIFIED_KEY)) {
      sessionStorage.setItem(VERIFIED_KEY, "1");
      showVerifyBanner();
    }
  }

  function showAccountPanel(open) {
    $("#account-panel").hidden = !open;
    $("#account-toggle").setAttribute("aria-expanded", String(open));
    if (!open) cancelAccountDeletion(false);
  }

  function toggleAccountPanel() {
    const open = $("#account-panel").hidden;
    showAccountPanel(open);
    if (open) {
      refreshAccount();
      $("#account-panel-title").focus();
    }
  }

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
    const email = sessionStorage.getItem(EMAIL_KEY) || "your account";
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
        signOut(`The account ${email} is deleted, with all its conversions and MP3s.`, "ok");
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

  // ---- conversion options ----

  const TEXT_OPTIONS = ["quality", "start", "end", "title", "artist", "album"];

  // The upload's option fields: only those given (the service's defaults need no field).
  function chosenOptions() {
    const fields = [];
    for (const name of TEXT_OPTIONS) {
      const value = $(`#opt-${name}`).value.trim();
      if (value) fields.push([name, value]);
    }
    if ($("#opt-normalize").checked) fields.push(["normalize", "true"]);
    if (!$("#opt-cover").checked) fields.push(["cover", "none"]);
    return fields;
  }

  // What the options ask for, in the panel's summary line (shown even while it is closed).
  function showOptionsSummary() {
    const value = (name) => $(`#opt-${name}`).value.trim();
    const parts = [];
    if (value("quality")) parts.push(qualityShort(value("quality")));
    if (value("start") || value("end")) parts.push(`${value("start") || "0:00"}–${value("end") || "end"}`);
    if ($("#opt-normalize").checked) parts.push("normalized");
    if (!$("#opt-cover").checked) parts.push("no cover");
    const tags = ["title", "artist", "album"].map(value).filter(Boolean);
    if (tags.length) parts.push(tags.join(" — "));
    $("#options-summary").textContent = parts.length ? `(${parts.join(" · ")})` : "(defaults)";
  }

  // Title and trim belong to one file: only the other choices are kept for the next visit.
  function rememberOptions() {
    const kept = {
      quality: $("#opt-quality").value,
      artist: $("#opt-artist").value,
      album: $("#opt-album").value,
      normalize: $("#opt-normalize").checked,
      cover: $("#opt-cover").checked,
    };
    try {
      localStorage.setItem(OPTIONS_KEY, JSON.stringify(kept));
    } catch (_) { /* storage disabled: the choices last as long as the page */ }
    showOptionsSummary();
  }

  function restoreOptions() {
    let kept = {};
    try {
      kept = JSON.parse(localStorage.getItem(OPTIONS_KEY) || "{}") || {};
    } catch (_) { kept = {}; }
    const quality = $("#opt-quality");
    if ([...quality.options].some((option) => option.value === kept.quality)) quality.value = kept.quality;
    for (const name of ["artist", "album"]) {
      if (typeof kept[name] === "string") $(`#opt-${name}`).value = kept[name].slice(0, 200);
    }
    for (const name of ["normalize", "cover"]) {
      if (typeof kept[name] === "boolean") $(`#opt-${name}`).checked = kept[name];
    }
    for (const name of ["title", "start", "end"]) $(`#opt-${name}`).value = "";
    showOptionsSummary();
  }

  // ---- uploads ----

  function uploadMessage(status, body, retryAfter) {
    let parsed = "";
    try { parsed = JSON.parse(body).error || ""; } catch (_) { parsed = ""; }
    if (parsed && saysWhenToRetry(status, retryAfter)) return `Not uploaded: ${parsed.replace(/\.$/, "")}.`;
    switch (status) {
      case 413: {
        const limit = /limit is (\d+)/.exec(parsed);
        if (!limit && parsed) return `Not uploaded: ${parsed.replace(/\.$/, "")}.`; // the storage quota
        return `Too large: the server accepts files up to ${limit ? humanSize(Number(limit[1])) : "its size limit"}.`;
      }
      case 422:
        return `Not uploaded: ${parsed ? parsed.replace(/\.$/, "") : "an option was refused"}. Check the Options.`;
      case 415:
        return "Not a video: this file does not look like audio or video (try .mp4, .mkv, .mov, .webm…).";
      case 401:
        return "Not uploaded: your login has expired. Log in again and retry.";
      case 503:
        return "Not uploaded: the service is busy or unavailable. Try again in a moment.";
      case 0:
        return "Upload interrupted: the connection was lost, or the file is larger than the server accepts.";
      default:
        return `Not uploaded: ${parsed || `the server answered ${status}`}.`;
    }
  }

  function uploadItem(file) {
    const name = file.name || "video";
    const bar = el("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${name}` });
    const message = el("span", { class: "upload-message", text: "Waiting…" });
    const item = el("li", { class: "upload", "data-state": "waiting" }, [
      el("span", { class: "upload-name", text: name }),
      el("span", { class: "upload-size", text: humanSize(file.size) }),
      bar,
      message,
    ]);
    $("#uploads").prepend(item);
    return { item, bar, message };
  }

  function setUpload(view, state, text, percent) {
    view.item.dataset.state = state;
    view.message.textContent = text;
    if (percent !== undefined) view.bar.value = percent;
  }

  function sendFile(file, view, options) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("Authorization", `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`);
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.floor((event.loaded / event.total) * 100);
        setUpload(view, "uploading", `Uploading… ${percent}%`, percent);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 202) {
          setUpload(view, "done", "Uploaded (100%). Converting: see My conversions below.", 100);
          refreshSoon();
        } else {
          setUpload(view, "error",
            uploadMessage(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
          if (xhr.status === 401) expired();
          else if (xhr.status === 422) $("#options").open = true;
          else if (xhr.status === 413 || xhr.status === 429) refreshAccount();
        }
        resolve();
      });
      for (const kind of ["error", "abort", "timeout"]) {
        xhr.addEventListener(kind, () => {
          setUpload(view, "error", uploadMessage(0, ""));
          refreshAccount();
          resolve();
        });
      }
      // The options go before the file: a wrong value is refused before the file is sent.
      const form = new FormData();
      for (const [name, value] of options) form.append(name, value);
      form.append("file", file, file.name || "video");
      setUpload(view, "uploading", "Uploading… 0%", 0);
      xhr.send(form);
    });
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length || !sessionStorage.getItem(TOKEN_KEY)) return;
    const options = chosenOptions(); // as they were when the files were chosen
    for (const file of files) {
      const view = uploadItem(file);
      uploadChain = uploadChain.then(() => (sessionStorage.getItem(TOKEN_KEY)
        ? sendFile(file, view, options)
        : setUpload(view, "error", "Not uploaded: you are logged out.")));
    }
  }

  // ---- conversions list ----

  async function signedUrl(jobId) {
    const response = await api("GET", `/jobs/${encodeURIComponent(jobId)}/download-url`);
    if (response.status === 401) {
      expired();
      throw new Error("logged out");
    }
    if (response.status === 410) refreshSoon(); // expired meanwhile: the list shows it
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  async function loadAudio(row) {
    const audio = $("audio", row.el);
    const signed = await signedUrl(row.job.job_id);
    row.urlExpires = signed.expires_at;
    const position = audio.currentTime;
    audio.src = signed.url;
    if (position) audio.currentTime = position;
  }

  async function download(row, button) {
    button.disabled = true;
    try {
      const signed = await signedUrl(row.job.job_id);
      const link = el("a", { href: signed.url, download: mp3Name(row.job.filename), hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      notify(`Could not download ${mp3Name(row.job.filename)}: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  function playerProblem(row, text) {
    const player = $(".job-player", row.el);
    const old = $(".player-problem", player);
    if (old) old.remove();
    player.prepend(el("p", { class: "job-error player-problem", text }));
  }

  function addPlayer(row) {
    const name = mp3Name(row.job.filename);
    const audio = el("audio", { controls: true, preload: "metadata", "aria-label": `Play ${name}` });
    const button = el("button", { type: "button", class: "download", text: `Download ${name}` });
    audio.addEventListener("error", () => {
      // The server answers 404 alike for a missing file and an expired link; the page knows
      // when its link expires: then it fetches a fresh one, at most once per expiry.
      if (row.urlExpires && Date.now() / 1000 > row.urlExpires - 30) {
        row.urlExpires = null;
        loadAudio(row).catch((err) => playerProblem(row, `The playback link expired and a new one could not be fetched: ${err.message}`));
      } else if (row.urlExpires) {
        playerProblem(row, "Could not play this MP3: it is no longer available.");
      }
    });
    button.addEventListener("click", () => download(row, button));
    $(".job-player", row.el).replaceChildren(audio, button);
    loadAudio(row).catch((err) => {
      $(".job-player", row.el).prepend(el("p", { class: "job-error", text: `Player unavailable: ${err.message}` }));
    });
  }

  function newRow(job) {
    const name = job.filename || "video";
    const field = (label, cls) => [el("dt", { class: `${cls}-label`, text: label }), el("dd", { class: cls })];
    const node = el("li", { class: "job", "data-job-id": job.job_id }, [
      el("div", { class: "job-head" }, [
        el("span", { class: "job-name", text: name }),
        el("span", { class: "job-status" }),
      ]),
      el("progress", { class: "job-progress", max: 100, value: 0, "aria-label": `Conversion progress of ${name}` }),
      el("div", { class: "job-details" }, [
        el("dl", { class: "job-meta" }, [
          ...field("Size", "job-size"),
          ...field("Uploaded", "job-created"),
          ...field("MP3 length", "job-duration"),
          ...field("MP3 kept until", "job-expires"),
          ...field("Tags", "job-tags"),
          ...field("Options", "job-options"),
        ]),
        el("img", { class: "job-cover", alt: "", hidden: true }),
      ]),
      el("p", { class: "job-error", hidden: true }),
      el("p", { class: "job-note", hidden: true }),
      el("div", { class: "job-player" }),
      el("p", { class: "form-problem job-problem", role: "alert", hidden: true }),
      el("div", { class: "job-actions" }),
    ]);
    const row = { el: node, job, urlExpires: null, cover: null, coverUrl: null, coverTries: 0 };
    showDeleteButton(row, false);
    return row;
  }

  // ---- what a conversion was asked for and what it made ----

  // "Évening Talk — Ann — Live": the MP3's ID3 tags.
  function tagsText(job) {
    const options = job.options || {};
    return [options.title, options.artist, options.album].filter(Boolean).join(" — ");
  }

  // "V0 · 0:10–1:30 · normalized · 3 chapters", or "kept source MP3 (copy)".
  function optionsText(job, status) {
    const options = job.options;
    if (!options) return ""; // a conversion from before the options
    const made = status === "done" || status === "expired";
    const parts = [];
    if (options.quality) parts.push(qualityShort(options.quality));
    else if (made && job.mode === "copy") parts.push("kept source MP3 (copy)");
    else parts.push(made ? "V2 (default)" : "default quality");
    if (options.start !== null && options.start !== undefined
        || options.end !== null && options.end !== undefined) {
      const end = options.end === null || options.end === undefined ? "end" : clockTime(options.end);
      parts.push(`${clockTime(options.start || 0)}–${end}`);
    }
    if (options.normalize) parts.push("normalized");
    if (options.cover === "none") parts.push("no cover");
    if (made && job.chapters) parts.push(plural(job.chapters, "chapter"));
    return parts.join(" · ");
  }

  // A term of the card's list, hidden while it has nothing to say; written only when it changes.
  function showFact(node, cls, text) {
    const value = $(`.${cls}`, node);
    if (value.textContent !== text) value.textContent = text;
    value.hidden = !text;
    $(`.${cls}-label`, node).hidden = !text;
  }

  // The cover is fetched once per finished job (with the login token, so not by an <img> src).
  async function loadCover(row) {
    const id = row.job.job_id;
    const token = sessionStorage.getItem(TOKEN_KEY);
    const current = () => rows.get(id) === row && sessionStorage.getItem(TOKEN_KEY) === token;
    row.cover = "loading";
    row.coverTries += 1;
    try {
      const response = await api("GET", `/jobs/${encodeURIComponent(id)}/cover`);
      if (!current()) return;
      if (response.status === 401) {
        expired();
        return;
      }
      if (!response.ok) { // deleted, expired, or no picture after all: nothing to show
        row.cover = "none";
        return;
      }
      const blob = await response.blob();
      if (!current() || row.cover !== "loading") return;
      const img = $(".job-cover", row.el);
      const name = (row.job.options && row.job.options.title) || row.job.filename || "this MP3";
      if (row.coverUrl) URL.revokeObjectURL(row.coverUrl);
      row.coverUrl = URL.createObjectURL(blob);
      if (row.job.cover) {
        img.width = row.job.cover.width;
        img.height = row.job.cover.height;
      }
      img.alt = `Cover of ${name}`;
      img.src = row.coverUrl;
      img.hidden = false;
      row.cover = "shown";
    } catch (_) {
      if (row.cover === "loading") row.cover = null; // tried again at the next refresh
    }
  }

  function showCover(row) {
    if (row.job.cover && row.cover === null && row.coverTries < COVER_TRIES) loadCover(row);
  }

  function dropCover(row) {
    if (row.cover === null && !row.coverUrl) return;
    if (row.coverUrl) URL.revokeObjectURL(row.coverUrl);
    row.coverUrl = null;
    row.cover = null;
    const img = $(".job-cover", row.el);
    img.hidden = true;
    img.removeAttribute("src");
  }

  // ---- deleting a conversion ----

  function showDeleteButton(row, focus) {
    const name = row.job.filename || "video";
    const button = el("button", {
      type: "button", class: "secondary job-delete", text: "Delete", "aria-label": `Delete ${name}`,
    });
    button.addEventListener("click", () => confirmDelete(row));
    $(".job-actions", row.el).replaceChildren(button);
    if (focus) button.focus();
  }

  function confirmDelete(row) {
    const name = row.job.filename || "video";
    const status = row.job.status;
    const question = status === "queued" || status === "converting"
      ? `Delete ${name}? Its conversion stops and nothing is kept.`
      : `Delete ${name}${status === "done" ? " and its MP3" : ""}? This cannot be undone.`;
    const yes = el("button", { type: "button", class: "danger", text: "Yes, delete" });
    const keep = el("button", { type: "button", class: "secondary", text: "Keep it" });
    const group = el("div", { class: "job-confirm", role: "group", "aria-label": `Confirm deleting ${name}` }, [
      el("span", { class: "job-question", text: question }), yes, keep,
    ]);
    yes.addEventListener("click", () => deleteJob(row, group));
    keep.addEventListener("click", () => showDeleteButton(row, true));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !yes.disabled) showDeleteButton(row, true);
    });
    $(".job-actions", row.el).replaceChildren(group);
    keep.focus(); // the safe choice is the one under the keyboard
  }

  async function deleteJob(row, group) {
    const name = row.job.filename || "video";
    const id = row.job.job_id;
    const problem = $(".job-problem", row.el);
    const hadFocus = row.el.contains(document.activeElement); // a disabled button loses it
    for (const button of group.querySelectorAll("button")) button.disabled = true;
    $(".job-question", group).textContent = `Deleting ${name}…`;
    showProblem(problem, "");
    try {
      const response = await api("DELETE", `/jobs/${encodeURIComponent(id)}`);
      if (response.status === 204 || response.status === 404) {
        removeRow(id, hadFocus);
        notify(response.status === 204 ? `Deleted ${name}.` : `${name} was already deleted.`, "ok");
        refreshAccount();
        return;
      }
      if (response.status === 401) {
        expired();
        return;
      }
      const text = await errorText(response);
      showDeleteButton(row, true);
      showProblem(problem, response.status === 503
        ? `Could not delete ${name}: the service is unavailable right now. Try again in a moment.`
        : `Could not delete ${name}: ${text}`);
    } catch (_) {
      showDeleteButton(row, true);
      showProblem(problem, `Could not delete ${name}: the server could not be reached. Try again.`);
    }
  }

  function removeRow(id, focusNext) {
    const row = rows.get(id);
    gone.add(id);
    if (!row) return;
    const audio = $("audio", row.el);
    if (audio) audio.pause();
    dropCover(row);
    const next = row.el.nextElementSibling || row.el.previousElementSibling;
    row.el.remove();
    rows.delete(id);
    if (!rows.size) $("#jobs-note").textContent = "No conversions yet. Upload a video to start.";
    if (focusNext) (next ? $(".job-delete", next) || next : $("#jobs-title")).focus();
  }

  // A finished MP3 past its expiry is gone (the download answers 410) even before the sweep
  // marks the job expired.
  function shownStatus(job) {
    const past = job.expires_at && Date.parse(job.expires_at) <= Date.now();
    return job.status === "done" && past ? "expired" : job.status;
  }

  function updateRow(row, job) {
    const node = row.el;
    const status = shownStatus(job);
    const finished = status === "failed" || status === "expired";
    const percent = status === "done" ? 100 : Math.max(0, Math.min(100, Math.round(job.progress || 0)));
    const label = STATUS_LABELS[status] || status;
    row.job = job;
    node.dataset.status = status;
    $(".job-status", node).textContent = finished ? label : `${label} · ${percent}%`;
    const bar = $(".job-progress", node);
    bar.value = percent;
    bar.hidden = finished;
    $(".job-size", node).textContent = humanSize(job.size);
    const created = job.created_at ? new Date(job.created_at) : null;
    $(".job-created", node).replaceChildren(created
      ? el("time", { dateTime: job.created_at, text: created.toLocaleString() })
      : "—");
    const made = status === "done" || status === "expired";
    const length = made ? humanDuration(job.duration) : "—";
    const stamp = made && typeof job.duration === "number" ? `PT${Number(job.duration.toFixed(3))}S` : "";
    const duration = $(".job-duration", node);
    const shownTime = $("time", duration);
    if (duration.textContent !== length || (shownTime ? shownTime.dateTime : "") !== stamp) {
      duration.replaceChildren(stamp ? el("time", { dateTime: stamp, text: length }) : length);
    }
    const keptUntil = made && job.expires_at;
    $(".job-expires-label", node).textContent = status === "expired" ? "MP3 deleted on" : "MP3 kept until";
    $(".job-expires", node).replaceChildren(keptUntil ? timeEl(job.expires_at) : "—");
    const reason = $(".job-error", node);
    reason.hidden = status !== "failed";
    reason.textContent = status === "failed" ? `Failed: ${job.error || "the conversion did not succeed."}` : "";
    const note = $(".job-note", node);
    note.hidden = status !== "expired";
    note.textContent = status === "expired"
      ? "This MP3 has expired and was deleted. Upload the video again to convert it once more."
      : "";
    showFact(node, "job-tags", tagsText(job));
    showFact(node, "job-options", optionsText(job, status));
    if (status === "done") showCover(row);
    else dropCover(row);
    const player = $(".job-player", node);
    if (status === "done" && !$("audio", node)) addPlayer(row);
    else if (status !== "done" && player.childElementCount) {
      const audio = $("audio", player);
      if (audio) audio.pause();
      player.replaceChildren();
    }
  }

  function render(all) {
    const list = $("#jobs");
    const seen = new Set();
    const jobs = all.filter((job) => !gone.has(job.job_id));
    const now = jobs.map((job) => `${job.job_id}:${job.status}:${shownStatus(job)}`).join(" ");
    if (now !== statuses) {
      statuses = now;
      refreshAccount(); // a new, finished, expired or deleted job changes the storage used
    }
    jobs.forEach((job, index) => {
      seen.add(job.job_id);
      let row = rows.get(job.job_id);
      if (!row) {
        row = newRow(job);
        rows.set(job.job_id, row);
      }
      updateRow(row, job);
      if (list.children[index] !== row.el) list.insertBefore(row.el, list.children[index] || null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        dropCover(row);
        row.el.remove();
        rows.delete(id);
      }
    }
    $("#jobs-note").textContent = jobs.length ? "" : "No conversions yet. Upload a video to start.";
  }

  async function refresh() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    try {
      const response = await api("GET", "/jobs");
      if (sessionStorage.getItem(TOKEN_KEY) !== token) return; // logged out meanwhile
      if (response.status === 401) {
        expired();
        return;
      }
      if (!response.ok) {
        $("#jobs-note").textContent = `Could not refresh the list: ${await errorText(response)}`;
        return;
      }
      const { jobs } = await response.json();
      if (sessionStorage.getItem(TOKEN_KEY) === token) render(jobs || []);
    } catch (_) {
      $("#jobs-note").textContent = "Could not reach the server; retrying…";
    }
  }

  function poll() {
    clearTimeout(pollTimer);
    pollTimer = null;
    refresh().finally(() => {
      if (sessionStorage.getItem(TOKEN_KEY) && pollTimer === null) {
        pollTimer = setTimeout(poll, POLL_MS);
      }
    });
  }

  function refreshSoon() {
    if (sessionStorage.getItem(TOKEN_KEY)) poll();
  }

  // ---- wiring ----

  function wire() {
    $("#login-form").addEventListener("submit", login);
    $("#register").addEventListener("click", register);
    $("#logout").addEventListener("click", () => signOut("You are logged out."));
    $("#account-toggle").addEventListener("click", toggleAccountPanel);
    $("#account-close").addEventListener("click", () => {
      showAccountPanel(false);
      $("#account-toggle").focus();
    });
    $("#account-delete-start").addEventListener("click", startAccountDeletion);
    $("#resend").addEventListener("click", resendVerification);
    restoreOptions();
    for (const kind of ["input", "change"]) $("#options").addEventListener(kind, rememberOptions);
    const input = $("#files");
    input.addEventListener("change", () => {
      addFiles(input.files);
      input.value = "";
    });
    const drop = $("#drop");
    for (const kind of ["dragenter", "dragover"]) {
      drop.addEventListener(kind, (event) => {
        event.preventDefault();
        drop.classList.add("over");
      });
    }
    for (const kind of ["dragleave", "dragend"]) {
      drop.addEventListener(kind, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      addFiles(event.dataTransfer && event.dataTransfer.files);
    });
    // A file dropped next to the zone must not replace the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
    verifyOutcome();
  }

  wire();
})();
