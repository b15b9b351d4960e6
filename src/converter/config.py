"""The converter's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MongoSettings,
    env_float,
    env_int,
    env_str,
)


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

    @classmethod
    def from_env(cls) -> "ConverterConfig":
        """Read the variables."""
        return cls(
            ffmpeg=env_str("FFMPEG_BINARY") or default_ffmpeg(),
            mp3_quality=env_int("MP3_QUALITY", 2, minimum=0),
            ffmpeg_timeout=env_float("FFMPEG_TIMEOUT_SECONDS", 3600.0),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            consumer=ConsumerSettings.from_env("converter", default_grace=600.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
