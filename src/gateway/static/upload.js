// Uploads: videos chosen or dropped, sent one after the other with the options chosen then, each
// with its progress and, when refused, why.

import { refreshAccount } from "./account.js";
import { expired, saysWhenToRetry, token } from "./api.js";
import { $, el } from "./dom.js";
import { humanSize } from "./format.js";
import { refreshSoon } from "./jobs.js";
import { chosenOptions } from "./options.js";

let uploadChain = Promise.resolve();

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
  if (!files.length || !token()) return;
  const options = chosenOptions(); // as they were when the files were chosen
  for (const file of files) {
    const view = uploadItem(file);
    uploadChain = uploadChain.then(() => (token()
      ? sendFile(file, view, options)
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
