"""The converter's settings, read once from the environment."""

import shutil
from dataclasses import dataclass

from common.settings import (
    ConfigError,
    ConsumerSettings,
    LifecycleSettings,
    MessagingSettings,
    MetricsSettings,
    MongoSettings,
    env_float,
    env_int,
    env_str,
)
from converter.ffmpeg import CONVERT_SECONDS
from converter.limits import DEFAULT_LIMITS, Limits

# LONG_JOB_SECONDS: a job whose passes decode more media than this (a normalized job's two
# passes count twice) is converted on the `video.long` lane, beside the short jobs. About 6 s of
# work for a 720p video on one core of a 2-core machine: a short job waits no longer than that.
LONG_JOB_SECONDS = 600.0
# LONG_JOB_BYTES: a larger video goes to `video.long` before it is even fetched: fetching it
# (about 0.5 s per 256 MiB from GridFS here) would hold the `video` lane as long as a job.
LONG_JOB_BYTES = 256 << 20


def default_ffmpeg() -> str:
    """The ffmpeg binary moviepy is configured with: the one in the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class ConverterConfig:
    """Everything the converter reads from the environment."""

    ffmpeg: str
    mp3_quality: int
    ffmpeg_timeout: float
    mongo: MongoSettings
    messaging: MessagingSettings
    consumer: ConsumerSettings
    log_level: str
    limits: Limits = DEFAULT_LIMITS
    long_job_seconds: float = LONG_JOB_SECONDS
    long_job_bytes: int = LONG_JOB_BYTES
    lifecycle: LifecycleSettings = LifecycleSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def from_env(cls) -> "ConverterConfig":
        """Read the variables."""
        long_job_seconds = env_float("LONG_JOB_SECONDS", LONG_JOB_SECONDS)
        if not long_job_seconds > 0:
            raise ConfigError("environment variable LONG_JOB_SECONDS must be more than 0, "
                              f"got {long_job_seconds:g}")
        return cls(
            ffmpeg=_resolve(env_str("FFMPEG_BINARY")) or default_ffmpeg(),
            mp3_quality=env_int("MP3_QUALITY", 2, minimum=0),
            ffmpeg_timeout=env_float("FFMPEG_TIMEOUT_SECONDS", CONVERT_SECONDS),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            consumer=ConsumerSettings.from_env("converter", default_grace=600.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
            long_job_seconds=long_job_seconds,
            long_job_bytes=env_int("LONG_JOB_BYTES", LONG_JOB_BYTES, minimum=1),
            limits=Limits(
                media_seconds=env_float("MAX_MEDIA_SECONDS", DEFAULT_LIMITS.media_seconds),
                cpu_seconds=env_int("FFMPEG_CPU_SECONDS", DEFAULT_LIMITS.cpu_seconds, minimum=1),
                memory_bytes=env_int("FFMPEG_MEMORY_BYTES", DEFAULT_LIMITS.memory_bytes,
                                     minimum=256 << 20),
                mp3_bytes=env_int("MAX_MP3_BYTES", DEFAULT_LIMITS.mp3_bytes, minimum=1 << 20),
            ),
            lifecycle=LifecycleSettings.from_env(),
            metrics=MetricsSettings.from_env(),
        )


def _resolve(binary: str) -> str:
    """A program name as an absolute path: ffmpeg runs with no PATH to search."""
    return (shutil.which(binary) or binary) if binary else ""
