"""The word lists bundled beside this module (one entry per line, `#` comments), read once each."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def word_list(name: str) -> frozenset[str]:
    """The entries of app/security/`name`, lower-cased."""
    text = resources.files("app.security").joinpath(name).read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))
