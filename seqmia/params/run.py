"""Top-level keys: ``seed`` and ``device``."""

from __future__ import annotations

from seqmia.params.schema import register_section

register_section("seed", int)
register_section(
    "device",
    str,
    (
        lambda v: v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()),
        "one of 'auto', 'cpu', 'cuda', 'cuda:N'",
    ),
)
