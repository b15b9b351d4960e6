"""notification: consumes `mp3` and emails users about their conversions."""
