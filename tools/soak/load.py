"""The soak's users: registered and confirmed, then uploading, now and then deleting, each on
a thread of its own with pauses; every request and its answer recorded."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from dataclasses import dataclass, field

import requests

from tools.mailsink import verification_link
from tools.soak.clips import DONE, Clip, Pick, pick

TIMEOUT = (5, 60)  # connect, read: bounded, long enough for an upload on a busy machine
PASSWORD = "soak password 1234"


@dataclass
class Upload:
    """One POST /upload and what became of it, as its user saw it."""

    user: str  # the address
    owner: str  # the account id
    filename: str  # unique in the run: how the job is found when no answer came
    label: str
    kind: str
    options: dict
    expected: str
    gateway: str
    sent_at: float  # epoch seconds
    answered_at: float | None = None
    status: int | None = None  # None: no answer (connection refused or cut, timeout)
    error: str = ""  # the answer's error sentence, or the connection error
    job_id: str | None = None
    delete: dict | None = None  # {"sent_at", "answered_at", "status", "seen"} of DELETE

    @property
    def accepted(self) -> bool:
        """The user got its 202."""
        return self.status == 202

    def refusal(self) -> str | None:
        """Why it was refused, as a category; None when accepted or unanswered."""
        if self.status is None or self.status == 202:
            return None
        if self.status == 429:
            return "too_many_active" if "waiting or converting" in self.error else "rate_limited"
        if self.status == 413:
            return "quota"
        if self.status == 503:
            return "unavailable"
        return f"http_{self.status}"


@dataclass
class User:
    """One account and its token."""

    email: str
    token: str
    owner: str
    rng: random.Random
    uploads: list[Upload] = field(default_factory=list)


def account_id(token: str) -> str:
    """The account id a login token names (its ``sub``)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def _retrying(what: str, call, attempts: int = 20):
    """Call until it answers with a success: set-up happens before any fault, but the stack
    may still be warming up."""
    last = None
    for _ in range(attempts):
        try:
            response = call()
            if response.status_code < 300:
                return response
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(1)
    raise RuntimeError(f"{what}: {last}")


def make_user(gateway: str, mail_dir, index: int, seed: int) -> User:
    """Register over HTTP, follow the confirmation link from the mailbox, log in."""
    email = f"soak-{seed}-{index:02d}@example.com"
    _retrying(f"register {email}", lambda: requests.post(
        f"{gateway}/register", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT))
    link = verification_link(mail_dir, email, timeout=60, consume=True)
    _retrying(f"confirm {email}", lambda: requests.get(link, timeout=TIMEOUT))
    token = _retrying(f"login {email}", lambda: requests.post(
        f"{gateway}/login", auth=(email, PASSWORD), timeout=TIMEOUT)).text.strip()
    return User(email, token, account_id(token), random.Random(f"user:{seed}:{index}"))


class Load:
    """Users uploading through random gateway replicas until ``stop()``."""

    def __init__(self, users: list[User], gateways: list[str], clips: list[Clip],
                 pause: tuple[float, float], delete_share: float, clock=time.time):
        self.users = users
        self.gateways = gateways
        self.clips = clips
        self.pause = pause
        self.delete_share = delete_share
        self.clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sequence = 0

    @property
    def uploads(self) -> list[Upload]:
        """Every upload of every user so far."""
        return [upload for user in self.users for upload in list(user.uploads)]

    def start(self) -> None:
        """One thread per user, their first uploads spread over the first pause."""
        for user in self.users:
            thread = threading.Thread(target=self._run, args=(user,), daemon=True,
                                      name=f"user-{user.email}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 90) -> None:
        """Let each user finish the request in hand (bounded by the requests' timeouts)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self, user: User) -> None:
        self._stop.wait(user.rng.uniform(0, self.pause[1]))
        while not self._stop.is_set():
            upload = self._upload(user, pick(self.clips, user.rng))
            if upload.accepted and user.rng.random() < self.delete_share:
                self._delete_if_running(user, upload)
            elif upload.refusal() == "quota":
                self._delete_oldest_done(user)
            self._stop.wait(user.rng.uniform(*self.pause))

    def _name(self, user: User, chosen: Pick) -> str:
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        local = user.email.split("@")[0]
        return f"{local}-{sequence:05d}-{chosen.clip.kind}{chosen.clip.suffix}"

    def _upload(self, user: User, chosen: Pick) -> Upload:
        gateway = user.rng.choice(self.gateways)
        upload = Upload(user=user.email, owner=user.owner, filename=self._name(user, chosen),
                        label=chosen.label, kind=chosen.clip.kind, options=chosen.options,
                        expected=chosen.expected, gateway=gateway, sent_at=self.clock())
        user.uploads.append(upload)
        try:
            with open(chosen.clip.path, "rb") as fh:
                response = requests.post(
                    f"{gateway}/upload", data=chosen.options,
                    files={"file": (upload.filename, fh, chosen.clip.content_type)},
                    headers={"Authorization": f"Bearer {user.token}"}, timeout=TIMEOUT)
        except requests.RequestException as exc:
            upload.error = f"{type(exc).__name__}: {exc}"[:300]
            return upload
        upload.answered_at, upload.status = self.clock(), response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300]}
        if upload.accepted:
            upload.job_id = body.get("job_id")
        else:
            upload.error = str(body.get("error", ""))[:300]
        return upload

    def _delete_if_running(self, user: User, upload: Upload) -> None:
        """DELETE the job as soon as it is converting (or after a few seconds still waiting),
        as a user who changed their mind does; what the job was just before is recorded."""
        gateway = user.rng.choice(self.gateways)
        headers = {"Authorization": f"Bearer {user.token}"}
        deadline = time.monotonic() + 3
        while not self._stop.is_set():
            try:
                seen = requests.get(f"{gateway}/jobs/{upload.job_id}", headers=headers,
                                    timeout=TIMEOUT).json().get("status")
            except (requests.RequestException, ValueError):
                return
            if seen == "converting" or (seen == "queued" and time.monotonic() > deadline):
                self._delete(user, upload, gateway, seen)
                return
            if seen != "queued":
                return
            time.sleep(0.1)

    def _delete(self, user: User, upload: Upload, gateway: str, seen: str) -> None:
        record = {"sent_at": self.clock(), "answered_at": None, "status": None, "seen": seen}
        upload.delete = record
        try:
            response = requests.delete(f"{gateway}/jobs/{upload.job_id}", timeout=TIMEOUT,
                                       headers={"Authorization": f"Bearer {user.token}"})
        except requests.RequestException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            return
        record["answered_at"], record["status"] = self.clock(), response.status_code

    def _delete_oldest_done(self, user: User) -> None:
        """Over quota: delete the oldest finished conversion, as the 413 advises."""
        done = [u for u in user.uploads if u.accepted and u.delete is None and u.expected == DONE]
        if done:
            self._delete(user, done[0], user.rng.choice(self.gateways), "over quota")
