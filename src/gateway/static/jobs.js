// The list of conversions: polled while logged in, one card per job with its progress, player,
// download, cover and delete button. The server answers a page at a time (newest first); the poll
// fetches the first page, and "Show older conversions" follows the `next` cursor. Older pages,
// once shown, stay shown across polls.

import { refreshAccount } from "./account.js";
import { api, errorText, expired, token } from "./api.js";
import { $, el, notify, showProblem, timeEl } from "./dom.js";
import { STATUS_LABELS, humanDuration, humanSize, mp3Name } from "./format.js";
import { optionsText, tagsText } from "./options.js";

const POLL_MS = 2500;
const PAGE = 50; // jobs per answer of GET /jobs
const COVER_TRIES = 3; // fetches of a job's cover picture that failed on the way, at most

const rows = new Map(); // job_id -> {el, job, urlExpires, cover, coverUrl, coverTries}
const gone = new Set(); // jobs deleted from this page: a list fetched before must not bring them back
let pollTimer = null;
let statuses = null; // the jobs and their statuses at the last refresh: storage changes with them
let shown = []; // the jobs on the page, in list order
let older = null; // the cursor of the jobs after the last one shown; null: it is the oldest
let loadingOlder = false;

// ---- playing and downloading a finished MP3 ----

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
  // A long name is cut short on the button; the title keeps it whole.
  const button = el("button", {
    type: "button", class: "download", text: `Download ${name}`, title: `Download ${name}`,
  });
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

// ---- the cover picture ----

// The cover is fetched once per finished job (with the login token, so not by an <img> src).
async function loadCover(row) {
  const id = row.job.job_id;
  const jwt = token();
  const current = () => rows.get(id) === row && token() === jwt;
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
  shown = shown.filter((job) => job.job_id !== id);
  if (!rows.size) $("#jobs-note").textContent = "No conversions yet. Upload a video to start.";
  if (focusNext) (next ? $(".job-delete", next) || next : $("#jobs-title")).focus();
}

// ---- one card ----

function newRow(job) {
  const name = job.filename || "video";
  const field = (label, cls) => [el("dt", { class: `${cls}-label`, text: label }), el("dd", { class: cls })];
  const node = el("li", { class: "job", "data-job-id": job.job_id }, [
    el("div", { class: "job-head" }, [
      el("span", { class: "job-name", text: name, title: name }), // a long one is cut short
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

// A term of the card's list, hidden while it has nothing to say; written only when it changes.
// One cut short after a few lines (the tags) keeps its whole text in a title.
function showFact(node, cls, text, { titled = false } = {}) {
  const value = $(`.${cls}`, node);
  if (value.textContent !== text) {
    value.textContent = text;
    if (titled) value.title = text;
  }
  value.hidden = !text;
  $(`.${cls}-label`, node).hidden = !text;
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
  showFact(node, "job-tags", tagsText(job), { titled: true });
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

// ---- the list, polled ----

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
  shown = jobs;
  $("#jobs-note").textContent = jobs.length ? "" : "No conversions yet. Upload a video to start.";
  showMore();
}

// Whether a job comes after another in the list (newest first; the server orders jobs created at
// the same instant by id, as is done here).
function isAfter(job, other) {
  const [a, b] = [job.created_at || "", other.created_at || ""];
  return a !== b ? a < b : job.job_id < other.job_id;
}

// The jobs to show after a fresh first page: those shown below its last job (older pages the
// person asked for, or jobs new ones pushed off the first page), kept with their cursor; a job
// shown above it that is not on it was deleted meanwhile.
function withOlder(first, next) {
  const ids = new Set(first.map((job) => job.job_id));
  const last = first[first.length - 1];
  let below = [];
  if (last) {
    const at = shown.findIndex((job) => job.job_id === last.job_id);
    if (at >= 0) below = shown.slice(at + 1);
    else if (shown.length && !isAfter(last, shown[shown.length - 1])) below = shown;
    below = below.filter((job) => !ids.has(job.job_id));
  }
  if (!below.length) older = next;
  return first.concat(below);
}

function showMore() {
  const button = $("#jobs-more");
  button.hidden = !older;
  button.disabled = loadingOlder;
  button.textContent = loadingOlder ? "Loading older conversions…" : "Show older conversions";
}

async function loadOlder() {
  const jwt = token();
  const cursor = older;
  const button = $("#jobs-more");
  const problem = $("#jobs-more-problem");
  if (!jwt || !cursor || loadingOlder) return;
  loadingOlder = true;
  showMore();
  showProblem(problem, "");
  let added = [];
  try {
    const response = await api("GET", `/jobs?limit=${PAGE}&cursor=${encodeURIComponent(cursor)}`);
    if (token() !== jwt) return; // logged out meanwhile
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      showProblem(problem, `Could not load older conversions: ${await errorText(response)}`);
      return;
    }
    const { jobs, next } = await response.json();
    if (token() !== jwt) return;
    const ids = new Set(shown.map((job) => job.job_id));
    added = (jobs || []).filter((job) => !ids.has(job.job_id) && !gone.has(job.job_id));
    older = next || null;
    render(shown.concat(added));
  } catch (_) {
    if (token() === jwt) showProblem(problem, "Could not load older conversions: the server could not be reached. Try again.");
  } finally {
    loadingOlder = false;
    if (token() === jwt) showMore();
    // The control goes once the oldest job is shown: the first card it brought takes the focus.
    if (button.hidden && document.activeElement === document.body && added.length) {
      const row = rows.get(added[0].job_id);
      if (row) $(".job-delete", row.el).focus();
    }
  }
}

async function refresh() {
  const jwt = token();
  if (!jwt) return;
  try {
    const response = await api("GET", `/jobs?limit=${PAGE}`);
    if (token() !== jwt) return; // logged out meanwhile
    if (response.status === 401) {
      expired();
      return;
    }
    if (!response.ok) {
      $("#jobs-note").textContent = `Could not refresh the list: ${await errorText(response)}`;
      return;
    }
    const { jobs, next } = await response.json();
    if (token() === jwt) render(withOlder(jobs || [], next || null));
  } catch (_) {
    $("#jobs-note").textContent = "Could not reach the server; retrying…";
  }
}

function poll() {
  clearTimeout(pollTimer);
  pollTimer = null;
  refresh().finally(() => {
    if (token() && pollTimer === null) {
      pollTimer = setTimeout(poll, POLL_MS);
    }
  });
}

// Refreshes the list now (after an upload, say) rather than at the next poll.
export function refreshSoon() {
  if (token()) poll();
}

export function startJobs() {
  $("#jobs-note").textContent = "Loading…";
  const button = $("#jobs-more");
  if (!button.dataset.bound) {
    button.dataset.bound = "1";
    button.addEventListener("click", loadOlder);
  }
  statuses = null;
  poll(); // its first answer also loads the storage used (see render)
}

export function stopJobs() {
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
  shown = [];
  older = null;
  $("#jobs").replaceChildren();
  showProblem($("#jobs-more-problem"), "");
  showMore();
}
