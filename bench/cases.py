"""The six measurements of `make bench`; each returns result rows for the report."""

from __future__ import annotations

import functools
import os
import time

import gridfs

from bench import direct, media
from bench.context import Bench
from bench.timing import RssSampler, cpu_seconds, interleaved, median, pids_named
from common import topology
from common.broker import connect
from common.store import MP3S, VIDEOS

MIB = 1024 * 1024
BIG_FILE = 500 * MIB
QUEUED_CLIPS = 30
PARTS_TARGETS = {10: 1.3, 600: 1.10}  # clip seconds -> job / parts


def row(case: str, what: str, value: float, target: str | None, ok: bool | None,
        detail: str = "") -> dict:
    """One line of the results table."""
    return {"case": case, "what": what, "value": value, "target": target, "ok": ok,
            "detail": detail}


def _ratio_row(case: str, what: str, value: float, limit: float, at_most: bool,
               detail: str) -> dict:
    ok = value <= limit if at_most else value >= limit
    return row(case, what, value, f"{'<=' if at_most else '>='} {limit:g}x", ok, detail)


def converter_overhead(bench: Bench) -> list[dict]:
    """1. Converter job over download + raw ffmpeg + upload, and over raw ffmpeg alone."""
    rows = []
    for seconds in (10, 60) if bench.options.quick else (10, 60, 600):
        path = bench.clip(seconds)
        fid = bench.jobs.put_video(path)
        reps = bench.options.long_reps if seconds >= 600 else bench.options.reps
        print(f"  {seconds}s clip ({path.stat().st_size / MIB:.0f} MiB), {reps} reps", flush=True)
        try:
            rows += _overhead_rows(bench, seconds, path, fid, reps)
        except Exception as exc:  # noqa: BLE001 - the parts alone still say where time goes
            runs = interleaved(reps, {"parts": functools.partial(
                direct.parts, bench.jobs.store, bench.ffmpeg, fid, bench.work)})["parts"]
            rows.append(row("1", f"converter job / its parts, {seconds}s clip", float("nan"),
                            _target(seconds), False,
                            f"{type(exc).__name__}: {exc}; {_parts_detail(runs)}"))
        finally:
            bench.jobs.store.delete_file(VIDEOS, fid)
    return rows


def _target(seconds: int) -> str | None:
    return f"<= {PARTS_TARGETS[seconds]:g}x" if seconds in PARTS_TARGETS else None


def _parts_detail(parts: list[dict]) -> str:
    return (f"parts {median(parts):.2f}s = download {median(parts, 'download'):.2f} + ffmpeg "
            f"{median(parts, 'ffmpeg'):.2f} + upload {median(parts, 'upload'):.2f} "
            f"(probe {median(parts, 'probe'):.2f} not counted)")


def _overhead_rows(bench: Bench, seconds: int, path, fid, reps: int) -> list[dict]:
    bench.converter_job(fid, path)  # warm-up: connections, imports, page cache
    runs = interleaved(reps, {
        "converter": lambda: bench.converter_job(fid, path),
        "parts": lambda: direct.parts(bench.jobs.store, bench.ffmpeg, fid, bench.work),
    })
    job, parts = median(runs["converter"]), median(runs["parts"])
    raw = median(runs["parts"], "ffmpeg")
    detail = f"job {job:.2f}s; {_parts_detail(runs['parts'])}"
    what = f"converter job / its parts, {seconds}s clip"
    first = (_ratio_row("1", what, job / parts, PARTS_TARGETS[seconds], True, detail)
             if seconds in PARTS_TARGETS else row("1", what, job / parts, None, None, detail))
    return [first, row("1", f"converter job / raw ffmpeg, {seconds}s clip", job / raw, None,
                       None, f"job {job:.2f}s, raw ffmpeg {raw:.2f}s")]


def moviepy_vs_converter(bench: Bench) -> list[dict]:
    """2. The classic moviepy conversion over our converter, 60 s clip."""
    path = bench.clip(60)
    fid = bench.jobs.put_video(path)
    bench.converter_job(fid, path)
    out = bench.work / "moviepy.mp3"
    runs = interleaved(bench.options.reps, {
        "moviepy": lambda: direct.moviepy(path, out),
        "converter": lambda: bench.converter_job(fid, path),
    })
    bench.jobs.store.delete_file(VIDEOS, fid)
    classic, ours = median(runs["moviepy"]), median(runs["converter"])
    detail = (f"moviepy {classic:.2f}s (+{median(runs['moviepy'], 'imports'):.2f}s import) from a "
              f"local file; converter job {ours:.2f}s including both GridFS transfers")
    process = median(runs["moviepy"], "process")
    return [_ratio_row("2", "moviepy / converter job, 60s clip", classic / ours, 2.0, False,
                       detail),
            row("2", "moviepy script (python start + import + conversion) / converter job",
                process / ours, None, None, f"moviepy process {process:.2f}s")]


def stream_copy(bench: Bench) -> list[dict]:
    """3. Stream copy over re-encode, MP3 audio in MKV (the converter's command lines)."""
    path = bench.clip(60, "mkv")
    dst = bench.work / "copy.mp3"
    copy = direct.ffmpeg_command(bench.ffmpeg, path, dst)
    encode = direct.ffmpeg_command(bench.ffmpeg, path, dst, force_codec="aac")
    if "copy" not in copy:
        return [row("3", "stream copy / re-encode, 60s MKV", float("nan"), "<= 0.15x", False,
                    "the converter re-encodes MP3 audio instead of copying it")]
    runs = interleaved(bench.options.reps * 2, {
        "copy": lambda: {"seconds": direct.run_ffmpeg(copy)},
        "re-encode": lambda: {"seconds": direct.run_ffmpeg(encode)},
    })
    dst.unlink(missing_ok=True)
    a, b = median(runs["copy"]), median(runs["re-encode"])
    return [_ratio_row("3", "stream copy / re-encode, 60s MKV (MP3 audio)", a / b, 0.15, True,
                       f"copy {a:.3f}s, re-encode {b:.3f}s")]


def gateway_transfers(bench: Bench) -> list[dict]:
    """4. Gateway upload and download of 500 MiB over direct GridFS, with worker RSS growth."""
    big = media.random_mp4(BIG_FILE, bench.options.cache_dir)
    gateway, store = bench.gateway, bench.jobs.store
    workers = bench.gateway_workers()
    warm = bench.clip(10)
    bench.jobs.delete(gateway.upload(warm)["job_id"])  # warm-up: first request imports, connects
    reps = bench.options.long_reps

    def through_gateway() -> dict:
        with RssSampler(workers) as rss:
            start = time.perf_counter()
            answer = gateway.upload(big)
            seconds = time.perf_counter() - start
        bench.jobs.delete(answer["job_id"])  # and its video
        return {"seconds": seconds, "rss_growth_mib": rss.growth / MIB}

    def direct_put() -> dict:
        start = time.perf_counter()
        fid = direct.gridfs_upload(store, VIDEOS, big)
        seconds = time.perf_counter() - start
        store.delete_file(VIDEOS, fid)
        return {"seconds": seconds}

    print(f"  upload, {reps} reps", flush=True)
    up = interleaved(reps, {"gateway": through_gateway, "gridfs put": direct_put})
    rows = _transfer_rows("upload", up["gateway"], up["gridfs put"])

    with open(big, "rb") as src:
        bucket = gridfs.GridFSBucket(store.db, bucket_name=MP3S)
        fid = bucket.upload_from_stream("big.mp3", src, chunk_size_bytes=MIB, metadata={
            "owner": gateway.email, "content_type": "audio/mpeg"})
    out = bench.work / "download.bin"

    def gateway_get() -> dict:
        with RssSampler(workers) as rss:
            start = time.perf_counter()
            try:
                size = gateway.download(str(fid), out)
            except Exception as exc:  # noqa: BLE001 - a broken stream is a result too
                size, error = -1, f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - start
        out.unlink(missing_ok=True)
        if size != BIG_FILE:
            raise RuntimeError(f"download incomplete after {seconds:.1f}s "
                               f"({error if size < 0 else f'{size} bytes'})")
        return {"seconds": seconds, "rss_growth_mib": rss.growth / MIB}

    def direct_get() -> dict:
        start = time.perf_counter()
        direct.gridfs_download(store, MP3S, fid, out)
        seconds = time.perf_counter() - start
        out.unlink()
        return {"seconds": seconds}

    print(f"  download, {reps} reps", flush=True)
    try:
        down = interleaved(reps, {"gateway": gateway_get, "gridfs get": direct_get})
        rows += _transfer_rows("download", down["gateway"], down["gridfs get"])
    except RuntimeError as exc:
        plain = median(interleaved(reps, {"gridfs get": direct_get})["gridfs get"])
        rows.append(row("4", "gateway download / GridFS get, 500 MiB", float("nan"), "<= 1.25x",
                        False, f"{str(exc)[:160]}; direct get in 16-chunk ranges {plain:.2f}s"))
    finally:
        store.delete_file(MP3S, fid)
    return rows


def _transfer_rows(kind: str, gateway: list[dict], plain: list[dict]) -> list[dict]:
    g, p = median(gateway), median(plain)
    growth = max(s["rss_growth_mib"] for s in gateway)
    return [
        _ratio_row("4", f"gateway {kind} / direct GridFS, 500 MiB", g / p, 1.25, True,
                   f"gateway {g:.2f}s ({BIG_FILE / MIB / g:.0f} MiB/s), direct {p:.2f}s "
                   f"({BIG_FILE / MIB / p:.0f} MiB/s)"),
        row("4", f"gateway worker RSS growth during {kind} (max of reps)", growth, "<= 64 MiB",
            growth <= 64, "summed VmRSS of the gunicorn workers, sampled every 50 ms"),
    ]


def end_to_end(bench: Bench) -> list[dict]:
    """5. Upload accepted -> email received, 60 s clip, over raw ffmpeg of that clip."""
    web = bench.web()
    gateway = bench.gateway
    _purge(web.env["RABBITMQ_URL"])
    # notification asks auth whether the owner confirmed their address: the web stack's auth
    consumers = bench.stack.services(["converter", "notification"], web.env["RABBITMQ_URL"],
                                     "e2e", AUTH_URL=web.env["AUTH_URL"],
                                     PUBLIC_URL=web.env["PUBLIC_URL"])
    path = bench.clip(60)
    cmd = direct.ffmpeg_command(bench.ffmpeg, path, bench.work / "raw.mp3")

    def through_stack() -> dict:
        start = time.perf_counter()
        answer = gateway.upload(path)
        accepted = time.perf_counter()
        mailed = bench.wait_mail(answer["job_id"])
        bench.jobs.delete(answer["job_id"])  # its MP3 (and video, if still there)
        return {"seconds": mailed - accepted, "upload": accepted - start}

    try:
        through_stack()  # warm-up
        runs = interleaved(bench.options.reps, {
            "upload to email": through_stack,
            "raw ffmpeg": lambda: {"seconds": direct.run_ffmpeg(cmd)},
        })
    finally:
        consumers.stop()
    e2e, raw = median(runs["upload to email"]), median(runs["raw ffmpeg"])
    return [_ratio_row("5", "upload accepted -> email / raw ffmpeg, 60s clip", e2e / raw, 2.0,
                       True, f"accepted -> email {e2e:.2f}s (upload itself "
                       f"{median(runs['upload to email'], 'upload'):.2f}s), raw ffmpeg {raw:.2f}s")]


def throughput(bench: Bench) -> list[dict]:
    """6. Jobs per minute on 30 queued 10 s clips with 1 and with 2 converter processes."""
    bench.stop_converter()
    path = bench.clip(10)
    fid = bench.jobs.put_video(path)

    def run(count: int) -> dict:
        converters = bench.stack.converters(count, bench.queue_url, f"throughput-{count}")
        try:
            pids = [p.pid for p in converters.processes.values()]
            cpu = _cpu(bench, pids)
            start = time.perf_counter()
            ids = [bench.jobs.new_job(fid, path, bench.driver.publisher)
                   for _ in range(QUEUED_CLIPS)]
            arrived = bench.driver.wait(ids, 1800)
            seconds = max(t for t, _ in arrived.values()) - start
            cpu = {k: v - cpu[k] for k, v in _cpu(bench, pids).items()}
        finally:
            converters.stop()
        for _, message in arrived.values():
            bench.jobs.discard_result(message)
        return {"seconds": seconds, "jobs_per_min": QUEUED_CLIPS * 60 / seconds,
                "cores_busy": sum(cpu.values()) / seconds,
                **{f"cpu_{k}": v / QUEUED_CLIPS for k, v in cpu.items()}}

    reps = max(1, bench.options.long_reps - 1)
    runs = interleaved(reps, {"1 converter": lambda: run(1), "2 converters": lambda: run(2)})
    bench.jobs.store.delete_file(VIDEOS, fid)
    one = median(runs["1 converter"], "jobs_per_min")
    two = median(runs["2 converters"], "jobs_per_min")
    single = runs["1 converter"]
    per_job = {k[4:]: median(single, k) for k in single[0] if k.startswith("cpu_")}
    cores = median(single, "cores_busy")
    return [
        _ratio_row("6", "jobs/min, 2 converters / 1, 30 queued 10s clips", two / one, 1.7,
                   False, f"1 converter {one:.1f} jobs/min, 2 converters {two:.1f} jobs/min"),
        row("6", "cores kept busy by the stack with 1 converter", cores, None, None,
            "CPU seconds per job: " + ", ".join(f"{k} {v:.3f}" for k, v in per_job.items())
            + f"; with {os.cpu_count()} cores the ceiling for 2/1 is "
            f"{min(2.0, os.cpu_count() / cores):.2f}x"),
    ]


def _cpu(bench: Bench, converter_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the converters (with their ffmpeg runs), nx-27017, RabbitMQ and
    this benchmark process."""
    own = os.times()
    return {"converters+ffmpeg": sum(cpu_seconds(p) for p in converter_pids),
            "nx-27017": cpu_seconds(bench.stack.mongodb.pid),
            "rabbitmq": sum(cpu_seconds(p) for p in pids_named("beam.smp")),
            "bench": own.user + own.system}


def _purge(url: str) -> None:
    """Empty a vhost's `video` queue (left over by the upload measurement)."""
    connection = connect(url)
    try:
        channel = connection.channel()
        topology.declare(channel, 3)
        channel.queue_purge(topology.VIDEO)
    finally:
        connection.close()


CASES = {
    "1": converter_overhead,
    "2": moviepy_vs_converter,
    "3": stream_copy,
    "4": gateway_transfers,
    "5": end_to_end,
    "6": throughput,
}
