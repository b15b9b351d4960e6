"""Amounts written for people: sizes in the messages users and operators read."""


def size(n_bytes: int) -> str:
    """A size in the largest binary unit that keeps it readable: "512 MiB", "1.5 GiB"."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n_bytes >= 1 << shift:
            return f"{n_bytes / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"
