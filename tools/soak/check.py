"""After the soak: what every upload became, read from MongoDB, the mailbox and the queues,
held against what its user saw. Each finding is lost, duplicated or unexplained."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

from common import covers
from common.jobs import Status
from tools.mailsink import message_paths
from tools.soak.load import Upload

FINAL = (Status.DONE.value, Status.FAILED.value, Status.EXPIRED.value)


@dataclass
class Email:
    """A job email as stored by the SMTP sink."""

    job_id: str
    to: str
    subject: str
    body: str
    stored_at: float  # epoch seconds, from the sink's file name
    path: str


@dataclass
class Finding:
    """Something that breaks the promise: ``lost``, ``duplicated`` or ``unexplained``."""

    category: str
    what: str
    job_id: str | None = None
    filename: str | None = None


@dataclass
class Verdict:
    """Everything the check found, and what each upload came to."""

    findings: list[Finding] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[tuple[Upload, float]] = field(default_factory=list)
    explained_dead_letters: list[dict] = field(default_factory=list)
    unanswered_kept: int = 0

    def add(self, category: str, what: str, upload: Upload | None = None,
            job_id: str | None = None) -> None:
        """Record a finding."""
        self.findings.append(Finding(category, what, job_id or (upload.job_id if upload else None),
                                     upload.filename if upload else None))

    def count(self, category: str) -> int:
        """How many uploads have at least one finding of ``category``."""
        return len({(f.filename, f.job_id) for f in self.findings if f.category == category})


def read_job_emails(directory: Path) -> dict[str, list[Email]]:
    """Every stored email about a job (header X-Mp3converter-Job), by job id."""
    parser = BytesParser(policy=policy.default)
    found: dict[str, list[Email]] = defaultdict(list)
    for path in message_paths(directory):
        with open(path, "rb") as fh:
            message = parser.parse(fh)
        job_id = message.get("X-Mp3converter-Job")
        if not job_id:
            continue
        body = message.get_body(("plain",))
        found[str(job_id)].append(Email(
            str(job_id), str(message["X-Envelope-To"]).lower(), str(message["Subject"]).strip(),
            body.get_content() if body else "", int(path.name.split("-")[0]) / 1e9, str(path)))
    return found


class Checker:
    """Holds every upload against the databases, the mailbox and the queues."""

    def __init__(self, uploads: list[Upload], db, mail_dir: Path, email_grace: float):
        self.uploads = uploads
        self.db = db
        self.email_grace = email_grace  # an email may leave this long after a deletion began
        self.jobs = {str(job["_id"]): job for job in db["jobs"].find({})}
        self.by_name: dict[tuple, list[dict]] = defaultdict(list)
        for job in self.jobs.values():
            self.by_name[(job.get("owner"), job.get("filename"))].append(job)
        self.files = {bucket: list(db[f"{bucket}.files"].find({}, {"metadata": 1, "filename": 1}))
                      for bucket in ("videos", "mp3s")}
        self.emails = read_job_emails(mail_dir)
        self.verdict = Verdict()
        self.upload_of: dict[str, Upload] = {}

    def _files(self, bucket: str, job_id: str) -> list[dict]:
        return [f for f in self.files[bucket] if (f.get("metadata") or {}).get("job_id") == job_id]

    def run(self, dead_letters: dict[str, list[dict] | str], queues: list[dict] | str) -> Verdict:
        """Every check; the verdict."""
        known: set[str] = set()
        for upload in self.uploads:
            if upload.accepted:
                self._accepted(upload, known)
            elif upload.status is None:
                self._unanswered(upload, known)
            else:
                self._refused(upload)
        self.upload_of = {u.job_id: u for u in self.uploads if u.job_id}
        self._strays(known)
        self._dead_letters(dead_letters)
        self._queues(queues)
        return self.verdict

    # -- one upload ---------------------------------------------------------------------------
    def _accepted(self, upload: Upload, known: set[str]) -> None:
        verdict = self.verdict
        known.add(upload.job_id)
        named = self.by_name.get((upload.owner, upload.filename), [])
        if len(named) > 1:
            verdict.add("duplicated", f"{len(named)} jobs for one upload", upload)
        job = self.jobs.get(upload.job_id)
        deleted = upload.delete is not None and upload.delete.get("status") in (204, None)
        if job is None:
            if deleted:
                verdict.outcomes["deleted"] += 1
                self._deleted(upload)
            else:
                verdict.add("lost", "the accepted job is gone and nobody deleted it", upload)
            return
        if upload.delete is not None and upload.delete.get("status") == 204:
            verdict.add("unexplained", "DELETE answered 204 but the job is still there", upload)
        self._final(upload, job)

    def _unanswered(self, upload: Upload, known: set[str]) -> None:
        """No answer: either nothing was kept, or a whole job that runs its course."""
        named = self.by_name.get((upload.owner, upload.filename), [])
        if not named:
            self.verdict.outcomes["unanswered, nothing kept"] += 1
            for bucket in ("videos", "mp3s"):
                left = [f for f in self.files[bucket] if f.get("filename") == upload.filename]
                if left:
                    self.verdict.add("unexplained", f"an unanswered upload left {len(left)} "
                                                    f"{bucket} file(s) after the sweep", upload)
            return
        if len(named) > 1:
            self.verdict.add("duplicated", f"{len(named)} jobs for one unanswered upload", upload)
        upload.job_id = str(named[0]["_id"])
        known.add(upload.job_id)
        self.verdict.unanswered_kept += 1
        self._final(upload, named[0])

    def _refused(self, upload: Upload) -> None:
        self.verdict.outcomes[f"refused: {upload.refusal()}"] += 1
        if self.by_name.get((upload.owner, upload.filename)):
            self.verdict.add("unexplained", f"refused with {upload.status} yet kept as a job",
                             upload)
        if upload.refusal() not in ("too_many_active", "rate_limited", "quota", "unavailable"):
            self.verdict.add("unexplained", f"answered {upload.status}: {upload.error}", upload)

    def _deleted(self, upload: Upload) -> None:
        """A deleted job keeps no file, and no email left after its deletion began."""
        verdict = self.verdict
        for bucket in ("videos", "mp3s"):
            if self._files(bucket, upload.job_id):
                verdict.add("unexplained", f"a deleted job still has {bucket} files", upload)
        emails = self.emails.get(upload.job_id, [])
        if len(emails) > 1:
            verdict.add("duplicated", f"{len(emails)} emails for a deleted job", upload)
        began = upload.delete["sent_at"]
        late = [e for e in emails if e.stored_at > began + self.email_grace]
        if late:
            verdict.add("unexplained", f"an email {late[0].stored_at - began:.1f}s after the "
                                       f"job's deletion began (it was {upload.delete['seen']})",
                        upload)

    def _final(self, upload: Upload, job: dict) -> None:
        """The job ended once, as its file says it must, with one MP3 and one email if done,
        a reason and one email if failed."""
        verdict, job_id, status = self.verdict, upload.job_id, job.get("status")
        if status not in FINAL:
            verdict.add("lost", f"still {status} when the soak ended", upload)
            return
        if status == Status.EXPIRED.value:
            verdict.add("unexplained", "expired during the soak", upload)
            return
        verdict.outcomes[status] += 1
        if status != upload.expected:
            verdict.add("unexplained", f"{status} where {upload.expected} was due "
                                       f"({upload.label}): {job.get('error') or ''}", upload)
        mp3s = [f for f in self._files("mp3s", job_id) if not covers.is_cover(f)]
        emails = self.emails.get(job_id, [])
        mine = [e for e in emails if e.to == upload.user]
        if len(mine) != len(emails):
            verdict.add("unexplained", "an email about the job went to someone else", upload)
        if status == Status.DONE.value:
            if not mp3s:
                verdict.add("lost", "done without an MP3 in GridFS", upload)
            elif len(mp3s) > 1:
                verdict.add("duplicated", f"{len(mp3s)} MP3s in GridFS", upload)
            elif mp3s[0]["_id"] != job.get("mp3_fid"):
                verdict.add("unexplained", "the MP3 in GridFS is not the job's", upload)
            ready = [e for e in mine if e.subject.startswith("Your MP3 is ready")
                     and f"MP3 id: {job.get('mp3_fid')}" in e.body and job_id in e.body]
            self._one_email(upload, mine, ready)
        else:
            if not job.get("error"):
                verdict.add("unexplained", "failed without a reason", upload)
            if mp3s:
                verdict.add("unexplained", "failed, yet an MP3 is kept", upload)
            told = [e for e in mine if e.subject.startswith("Could not convert")]
            self._one_email(upload, mine, told)
        if status == Status.DONE.value and self._files("videos", job_id):
            verdict.add("unexplained", "done, yet its video is kept", upload)
        if mine and upload.answered_at:
            verdict.latencies.append((upload, min(e.stored_at for e in mine) - upload.answered_at))

    def _one_email(self, upload: Upload, mine: list[Email], right: list[Email]) -> None:
        if not mine:
            self.verdict.add("lost", "no email", upload)
        elif len(mine) > 1:
            self.verdict.add("duplicated", f"{len(mine)} emails", upload)
        elif not right:
            self.verdict.add("unexplained", f"the email does not say what happened: "
                                            f"{mine[0].subject!r}", upload)

    # -- what nobody asked for ----------------------------------------------------------------
    def _strays(self, known: set[str]) -> None:
        """Jobs no upload made, files no job holds, emails about no job of ours."""
        verdict = self.verdict
        for job_id, job in self.jobs.items():
            if job_id not in known:
                verdict.add("unexplained", f"a job no upload made ({job.get('filename')}, "
                                           f"{job.get('status')})", job_id=job_id)
        for bucket, ref in (("videos", "video_fid"), ("mp3s", "mp3_fid")):
            for doc in self.files[bucket]:
                job_id = (doc.get("metadata") or {}).get("job_id")
                job = self.jobs.get(job_id)
                field = "cover_fid" if covers.is_cover(doc) else ref  # a job's cover picture
                if job is None or job.get(field) != doc["_id"]:
                    verdict.add("unexplained", f"orphan {bucket} file {doc['_id']} after the "
                                               "sweep", job_id=job_id)
            files = {doc["_id"] for doc in self.files[bucket]}
            for files_id in self.db[f"{bucket}.chunks"].distinct("files_id"):
                if files_id not in files:
                    verdict.add("unexplained", f"orphan {bucket} chunks of {files_id} after "
                                               "the sweep")
        for job_id in set(self.emails) - known:
            verdict.add("unexplained", f"{len(self.emails[job_id])} email(s) about a job no "
                                       "upload made", job_id=job_id)

    def _dead_letters(self, dead_letters: dict[str, list[dict] | str]) -> None:
        """Each dead letter explained by its job: deleted, or finished and told all the same
        (a copy of a message whose work was done). Anything else waits for an operator."""
        for queue, letters in dead_letters.items():
            if isinstance(letters, str):
                self.verdict.add("unexplained", f"could not list {queue}.dlq: {letters}")
                continue
            for letter in letters:
                job = self.jobs.get(letter.get("job_id") or "")
                upload = self.upload_of.get(letter.get("job_id") or "")
                if upload is not None and upload.expected != Status.DONE.value:
                    self.verdict.add("unexplained", f"a file at fault ({upload.label}) went to "
                                                    f"{queue}.dlq: {letter.get('reason')}",
                                     upload)
                    continue
                if job is None:
                    why = "its job was deleted"
                elif job.get("status") in FINAL and job.get("notified_at"):
                    why = f"its job ended {job['status']} and its owner was told"
                else:
                    self.verdict.add("unexplained", f"dead letter in {queue}.dlq: "
                                                    f"{letter.get('reason')}",
                                     job_id=letter.get("job_id"))
                    continue
                self.verdict.explained_dead_letters.append(
                    {"queue": f"{queue}.dlq", "job_id": letter.get("job_id"),
                     "reason": letter.get("reason"), "explained": why})

    def _queues(self, queues: list[dict] | str) -> None:
        """At the end every queue but the dead-letter queues is empty."""
        if isinstance(queues, str):
            self.verdict.add("unexplained", f"could not list the queues: {queues}")
            return
        for queue in queues:
            if not queue["name"].endswith(".dlq") and queue["ready"] + queue["unacked"]:
                self.verdict.add("unexplained", f"queue {queue['name']} still holds "
                                                f"{queue['ready'] + queue['unacked']} message(s)")
