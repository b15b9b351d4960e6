"""converter: consumes `video`, makes MP3s with ffmpeg, publishes to `mp3`."""
