"""Local-only tools: the SMTP sink, the stack runner and media helpers for tests."""
