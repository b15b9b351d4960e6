"""A bounded, seeded chaos soak: users upload while processes are killed and servers stop,
then every accepted upload is checked to have ended once, with one MP3 and one email
(`make soak`, `python -m tools.soak --seconds N --seed S`; docs/reliability.md)."""
