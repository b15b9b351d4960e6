"""What the measurements share: options, inputs, and services started on first use."""

from __future__ import annotations

import email.parser
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import media
from bench.client import Gateway
from bench.driver import Jobs, QueueDriver
from bench.stack import BenchStack
from bench.timing import cpu_seconds
from tools import devstack
from tools.media import ffmpeg_exe
from tools.processes import Stack


@dataclass
class Options:
    """Command line choices."""

    # Repetitions of a measurement, at every clip length: the 600 s clip's jobs (4-7 s) vary by
    # a tenth between repetitions on 2 cores, so they get as many as the short clips.
    reps: int
    long_reps: int  # of the long ones: 500 MiB transfers (4), 30 queued jobs (6), a 1 GiB job (9)
    quick: bool
    cache_dir: Path
    work_dir: Path
    only: set[str] = field(default_factory=set)
    profile: bool = False
    runs: int = 1  # whole runs, combined into medians (report.combine)


class Bench:
    """Lazily started services plus helpers to run one converter job or one e2e job."""

    def __init__(self, options: Options, stack: BenchStack):
        self.options = options
        self.stack = stack
        self.ffmpeg = ffmpeg_exe()
        self.work = options.work_dir
        self.jobs = Jobs(stack.env)
        self._queue_url: str | None = None
        self._driver: QueueDriver | None = None
        self._converter: Stack | None = None
        self._web: Stack | None = None
        self._gateway: Gateway | None = None
        self._mails_seen: set[str] = set()

    def clip(self, seconds: int, container: str = "mp4") -> Path:
        """A cached input clip."""
        return media.clip(seconds, container, self.options.cache_dir)

    # -- the converter on its own vhost, fed and read by the benchmark ---------------------
    @property
    def queue_url(self) -> str:
        """The vhost where the benchmark plays the gateway and notification."""
        if self._queue_url is None:
            self._queue_url = self.stack.vhost()
        return self._queue_url

    @property
    def driver(self) -> QueueDriver:
        """Publisher of `video` and reader of `mp3` on the converter vhost."""
        if self._driver is None:
            self._driver = QueueDriver(self.queue_url)
        return self._driver

    def converter(self) -> Stack:
        """One running converter process on the converter vhost."""
        if self._converter is None:
            assert self.driver  # declares the queues before the converter looks for them
            self._converter = self.stack.converters(1, self.queue_url, "converter")
        return self._converter

    def stop_converter(self) -> None:
        """Stop the single converter (before starting others on the same queue)."""
        if self._converter is not None:
            self._converter.stop()
            self._converter = None

    def converter_job(self, fid, path: Path, timeout: float = 1800, options: dict | None = None,
                      details: bool = False) -> dict:
        """Seconds from queueing one job (recording it and publishing its `video` message, as
        the gateway does) to its `mp3` message arriving; ``options`` as the job records them.
        With ``details``, also the converter's CPU seconds (its ffmpeg runs included) and what
        the job recorded of its MP3: length, average kbit/s, the cover's width (0: none)."""
        pid = next(iter(self.converter().processes.values())).pid
        cpu = cpu_seconds(pid)
        start = time.perf_counter()
        job_id = self.jobs.new_job(fid, path, self.driver.publisher, options)
        arrived, message = self.driver.wait([job_id], timeout)[job_id]
        self.jobs.discard_result(message)
        result = {"seconds": arrived - start}
        if details:
            job = self.jobs.lifecycle.get(job_id) or {}
            result.update(cpu=cpu_seconds(pid) - cpu,
                          mp3_seconds=float(job.get("duration") or 0),
                          kbps=job.get("bitrate") or 0,
                          cover_width=(job.get("cover") or {}).get("width", 0),
                          cover_bytes=(job.get("cover") or {}).get("size", 0))
        return result

    # -- the public side: auth and gateway, with consumers on demand ----------------------
    def web(self) -> Stack:
        """auth and gateway on a vhost of their own."""
        if self._web is None:
            self._web = self.stack.services(["auth", "gateway"], self.stack.vhost(), "web")
        return self._web

    @property
    def gateway(self) -> Gateway:
        """A registered, logged-in user of the gateway who confirmed their address."""
        if self._gateway is None:
            web = self.web()
            gateway = Gateway(web.env["PUBLIC_URL"])
            devstack.flask_command("auth", ["verify-user", gateway.email], web.env,
                                   self.stack.var_dir / "log" / "auth-cli.log").check_returncode()
            self._gateway = gateway
        return self._gateway

    def gateway_workers(self) -> list[int]:
        """Pids of gunicorn's worker processes."""
        from bench.timing import children

        return children(self.web()["gateway"].pid)

    def wait_mail(self, job_id: str, timeout: float = 600) -> float:
        """perf_counter when the email about ``job_id`` is in the mail sink."""
        parser = email.parser.BytesHeaderParser()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in sorted(self.stack.mail_dir.glob("*.eml")):
                if path.name in self._mails_seen:
                    continue
                self._mails_seen.add(path.name)
                with open(path, "rb") as fh:
                    if parser.parse(fh).get("X-Mp3converter-Job") == job_id:
                        return time.perf_counter()
            time.sleep(0.01)
        raise TimeoutError(f"no email for job {job_id} within {timeout:.0f}s")

    def wait_settled(self, job_id: str, timeout: float = 120) -> None:
        """Until the converter has taken the job's last step, dropping its video (after the
        email went out): not part of the job's time, but the next measurement must not run
        beside it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.jobs.lifecycle.get(job_id)
            if job is None or job.get("video_deleted_at"):
                return
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} still holds its video after {timeout:.0f}s")

    def close(self) -> None:
        """Close the benchmark's own connections (the stack stops the processes)."""
        if self._driver is not None:
            self._driver.close()
        self.jobs.store.close()
