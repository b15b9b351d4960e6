// Uploads: videos chosen or dropped, sent one after the other with the options chosen then, each
// with its progress and, when refused, why. Files above RESUMABLE_ABOVE go with tus (POST
// /uploads, tus-js-client vendored in /static/vendor): a dropped connection is retried from the
// offset the server has, and after a reload the same file, chosen again, goes on where it
// stopped (the upload's URL is kept in localStorage until it is finished).

import { refreshAccount } from "./account.js";
import { expired, saysWhenToRetry, token } from "./api.js";
import { $, el } from "./dom.js";
import { humanSize } from "./format.js";
import { refreshSoon } from "./jobs.js";
import { chosenOptions } from "./options.js";

let uploadChain = Promise.resolve();
export const RESUMABLE_ABOVE = 8 * 1024 * 1024; // bytes; smaller files go in one POST /upload
const RESUMABLE_CHUNK = 8 * 1024 * 1024; // bytes per PATCH
// Tried again from the server's offset: the connection (0), another request still appending
// (423), a server or backend down; the others are answers to show.
const RETRY_STATUSES = new Set([0, 423, 500, 502, 503, 504]);

// tus-js-client's browser build, vendored at build time (scripts/vendor-js.sh), loaded the first
// time a large file is sent; null when it is not there (the file then goes with POST /upload).
let tusLoading = null;
function loadTus() {
  if (!tusLoading) {
    tusLoading = new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = "/static/vendor/tus.min.js";
      script.addEventListener("load", () => resolve(window.tus && window.tus.isSupported ? window.tus : null));
      script.addEventListener("error", () => resolve(null));
      document.head.append(script);
    });
  }
  return tusLoading;
}

function send(file, view, options) {
  if (file.size <= RESUMABLE_ABOVE) return sendFile(file, view, options);
  return loadTus().then((tus) => (tus ? sendResumable(tus, file, view, options) : sendFile(file, view, options)));
}

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
    el("span", { class: "upload-name", text: name, title: name }), // a long one is cut short
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
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
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
        refused(view, xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After"));
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

function refused(view, status, body, retryAfter) {
  setUpload(view, "error", uploadMessage(status, body, retryAfter));
  if (status === 401) expired();
  else if (status === 422) $("#options").open = true;
  else if (status === 413 || status === 429) refreshAccount();
}

function sendResumable(tus, file, view, options) {
  return new Promise((resolve) => {
    const metadata = { filename: file.name || "video", filetype: file.type || "application/octet-stream" };
    for (const [name, value] of options) metadata[name] = value;
    const upload = new tus.Upload(file, {
      endpoint: "/uploads",
      chunkSize: RESUMABLE_CHUNK,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
      metadata,
      headers: { Authorization: `Bearer ${token()}` },
      removeFingerprintOnSuccess: true,
      onShouldRetry(error) {
        const response = error.originalResponse;
        return RETRY_STATUSES.has(response ? response.getStatus() : 0);
      },
      onProgress(sent, total) {
        const percent = Math.floor((sent / total) * 100);
        setUpload(view, "uploading", `Uploading… ${percent}%`, percent);
      },
      onSuccess() {
        setUpload(view, "done", "Uploaded (100%). Converting: see My conversions below.", 100);
        refreshSoon();
        resolve();
      },
      onError(error) {
        const response = error.originalResponse;
        if (!response) {
          setUpload(view, "error", "Upload interrupted: the connection was lost. Choose the same file again to resume it.");
        } else {
          refused(view, response.getStatus(), response.getBody(), response.getHeader("Retry-After"));
        }
        refreshAccount();
        resolve();
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        setUpload(view, "uploading", "Resuming where it stopped…");
      } else {
        setUpload(view, "uploading", "Uploading… 0%", 0);
      }
      upload.start();
    });
  });
}

function addFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length || !token()) return;
  const options = chosenOptions(); // as they were when the files were chosen
  for (const file of files) {
    const view = uploadItem(file);
    uploadChain = uploadChain.then(() => (token()
      ? send(file, view, options)
      : setUpload(view, "error", "Not uploaded: you are logged out.")));
  }
}

export function clearUploads() {
  $("#uploads").replaceChildren();
}

export function wireUploads() {
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
}
