// mp3converter web page: account, uploads with progress and conversion options, the live list
// of conversions, storage used against the quota, and deleting conversions or the whole account.
// This module wires the parts together (index.html loads it as a module; it imports the rest).

import { showSignedIn, showSignedOut, verifyOutcome, wireAccount } from "./account.js";
import { forgetLogin, onExpired, token } from "./api.js";
import { $, notify } from "./dom.js";
import { startJobs, stopJobs } from "./jobs.js";
import { wireOptions } from "./options.js";
import { clearUploads, wireUploads } from "./upload.js";

function signedIn() {
  showSignedIn();
  startJobs();
}

function signOut(message, kind = "info") {
  forgetLogin();
  stopJobs();
  clearUploads();
  showSignedOut();
  notify(message, kind);
  $("#email").focus();
}

function wire() {
  wireAccount({ signedIn, signOut });
  onExpired(() => signOut("Your login has expired. Please log in again.", "error"));
  $("#logout").addEventListener("click", () => signOut("You are logged out."));
  wireOptions();
  wireUploads();
  if (token()) signedIn();
  verifyOutcome();
}

wire();
