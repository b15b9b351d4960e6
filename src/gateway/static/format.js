// How the page writes sizes, durations, times in the media, statuses and file names.

export const STATUS_LABELS = {
  queued: "Queued", converting: "Converting", done: "Done", failed: "Failed", expired: "Expired",
};

export function humanSize(bytes) {
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
export function quotaSize(bytes) {
  return humanSize(bytes).replace(/\.0 /, " ");
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function humanHours(hours) {
  if (hours >= 48 && Number.isInteger(hours / 24)) return plural(hours / 24, "day");
  if (hours >= 1) return plural(Math.round(hours * 10) / 10, "hour");
  return plural(Math.max(1, Math.round(hours * 60)), "minute");
}

export function humanDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// A point in the media as typed in the options: "0:01", "0:02.5", "1:02:03".
export function clockTime(seconds) {
  const millis = Math.round(seconds * 1000);
  const h = Math.floor(millis / 3_600_000);
  const m = Math.floor((millis % 3_600_000) / 60_000);
  const s = String(Math.floor((millis % 60_000) / 1000)).padStart(2, "0");
  const fraction = millis % 1000 ? `.${String(millis % 1000).padStart(3, "0").replace(/0+$/, "")}` : "";
  return `${h ? `${h}:${String(m).padStart(2, "0")}` : m}:${s}${fraction}`;
}

export function qualityShort(quality) {
  return /^v\d$/.test(quality) ? quality.toUpperCase() : `${quality} kbit/s`;
}

export function mp3Name(filename) {
  const base = (filename || "audio").split(/[\\/]/).pop();
  return `${base.replace(/\.[^.]*$/, "") || "audio"}.mp3`;
}

// A message from the server as a sentence: capital first, one full stop at the end.
export function sentence(text) {
  const trimmed = (text || "").trim().replace(/\.$/, "");
  return trimmed ? `${trimmed.charAt(0).toUpperCase()}${trimmed.slice(1)}.` : "";
}
