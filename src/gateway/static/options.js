// The conversion options: the upload card's form, what it sends, what is remembered on this
// device, and how a conversion's options read on its card.

import { $ } from "./dom.js";
import { clockTime, plural, qualityShort } from "./format.js";

const OPTIONS_KEY = "mp3converter.options"; // the remembered conversion options (localStorage)
const TEXT_OPTIONS = ["quality", "start", "end", "title", "artist", "album"];

// ---- the form ----

// The upload's option fields: only those given (the service's defaults need no field).
export function chosenOptions() {
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

export function wireOptions() {
  restoreOptions();
  for (const kind of ["input", "change"]) $("#options").addEventListener(kind, rememberOptions);
}

// ---- what a conversion was asked for and what it made ----

// "Évening Talk — Ann — Live": the MP3's ID3 tags.
export function tagsText(job) {
  const options = job.options || {};
  return [options.title, options.artist, options.album].filter(Boolean).join(" — ");
}

// "V0 · 0:10–1:30 · normalized · 3 chapters", or "kept source MP3 (copy)".
export function optionsText(job, status) {
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
