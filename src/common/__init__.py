"""Code every mp3converter service shares: settings, logging, messaging and storage."""
