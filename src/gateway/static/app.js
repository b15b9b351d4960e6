// mp3converter web page: account, uploads with progress, and the live list of conversions.
"use strict";

(() => {
  const TOKEN_KEY = "mp3converter.token";
  const EMAIL_KEY = "mp3converter.email";
  const POLL_MS = 2500;
  const STATUS_LABELS = { queued: "Queued", converting: "Converting", done: "Done", failed: "Failed" };

  const $ = (selector, root = document) => root.querySelector(selector);
  const rows = new Map(); // job_id -> {el, job, urlExpires}
  let pollTimer = null;
  let uploadChain = Promise.resolve();

  // ---- small helpers ----

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
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

  function humanDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
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
        notify(`Account created for ${creds.email}. You can log in now.`, "ok");
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
        $("#password").value = "";
        notify("");
        signedIn();
      } else if (response.status === 401) {
        notify("Wrong email or password.", "error");
      } else if (response.status === 503) {
        notify("The service is unavailable right now. Try again in a moment.", "error");
      } else {
        notify(`Could not log in: ${await errorText(response)}`, "error");
      }
    } catch (_) {
      notify("Could not reach the server. Check your connection and try again.", "error");
    }
  }

  function signedIn() {
    $("#who-email").textContent = sessionStorage.getItem(EMAIL_KEY) || "";
    $("#who").hidden = false;
    $("#account").hidden = true;
    $("#converter").hidden = false;
    $("#jobs-note").textContent = "Loading…";
    poll();
  }

  function signOut(message, kind = "info") {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EMAIL_KEY);
    clearTimeout(pollTimer);
    pollTimer = null;
    for (const { el: row } of rows.values()) {
      const audio = $("audio", row);
      if (audio) audio.pause();
    }
    rows.clear();
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

  // ---- uploads ----

  function uploadMessage(status, body) {
    let parsed = "";
    try { parsed = JSON.parse(body).error || ""; } catch (_) { parsed = ""; }
    switch (status) {
      case 413: {
        const limit = /limit is (\d+)/.exec(parsed);
        return `Too large: the server accepts files up to ${limit ? humanSize(Number(limit[1])) : "its size limit"}.`;
      }
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

  function sendFile(file, view) {
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
          setUpload(view, "error", uploadMessage(xhr.status, xhr.responseText));
          if (xhr.status === 401) expired();
        }
        resolve();
      });
      for (const kind of ["error", "abort", "timeout"]) {
        xhr.addEventListener(kind, () => {
          setUpload(view, "error", uploadMessage(0, ""));
          resolve();
        });
      }
      const form = new FormData();
      form.append("file", file, file.name || "video");
      setUpload(view, "uploading", "Uploading… 0%", 0);
      xhr.send(form);
    });
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length || !sessionStorage.getItem(TOKEN_KEY)) return;
    for (const file of files) {
      const view = uploadItem(file);
      uploadChain = uploadChain.then(() => (sessionStorage.getItem(TOKEN_KEY)
        ? sendFile(file, view)
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

  function addPlayer(row) {
    const name = mp3Name(row.job.filename);
    const audio = el("audio", { controls: true, preload: "metadata", "aria-label": `Play ${name}` });
    const button = el("button", { type: "button", class: "download", text: `Download ${name}` });
    audio.addEventListener("error", () => {
      // An expired signed URL: fetch a fresh one, at most once per expiry.
      if (row.urlExpires && Date.now() / 1000 > row.urlExpires - 30) {
        row.urlExpires = null;
        loadAudio(row).catch(() => {});
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
    const field = (label, cls) => [el("dt", { text: label }), el("dd", { class: cls })];
    const node = el("li", { class: "job", "data-job-id": job.job_id }, [
      el("div", { class: "job-head" }, [
        el("span", { class: "job-name", text: name }),
        el("span", { class: "job-status" }),
      ]),
      el("progress", { class: "job-progress", max: 100, value: 0, "aria-label": `Conversion progress of ${name}` }),
      el("dl", { class: "job-meta" }, [
        ...field("Size", "job-size"),
        ...field("Uploaded", "job-created"),
        ...field("MP3 length", "job-duration"),
      ]),
      el("p", { class: "job-error", hidden: true }),
      el("div", { class: "job-player" }),
    ]);
    return { el: node, job, urlExpires: null };
  }

  function updateRow(row, job) {
    const node = row.el;
    const percent = job.status === "done" ? 100 : Math.max(0, Math.min(100, Math.round(job.progress || 0)));
    const label = STATUS_LABELS[job.status] || job.status;
    row.job = job;
    node.dataset.status = job.status;
    $(".job-status", node).textContent = job.status === "failed" ? label : `${label} · ${percent}%`;
    const bar = $(".job-progress", node);
    bar.value = percent;
    bar.hidden = job.status === "failed";
    $(".job-size", node).textContent = humanSize(job.size);
    const created = job.created_at ? new Date(job.created_at) : null;
    $(".job-created", node).replaceChildren(created
      ? el("time", { dateTime: job.created_at, text: created.toLocaleString() })
      : "—");
    $(".job-duration", node).textContent = job.status === "done" ? humanDuration(job.duration) : "—";
    const reason = $(".job-error", node);
    reason.hidden = job.status !== "failed";
    reason.textContent = job.status === "failed" ? `Failed: ${job.error || "the conversion did not succeed."}` : "";
    if (job.status === "done" && !$("audio", node)) addPlayer(row);
  }

  function render(jobs) {
    const list = $("#jobs");
    const seen = new Set();
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
  }

  wire();
})();
