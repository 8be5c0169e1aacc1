"""What `--enhance` needs (cheap to import: the engine table reads it before anything is loaded)."""

from __future__ import annotations

__all__ = ["ENHANCERS"]

ENHANCERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "gpen": (("gpen512",), ("parsenet",)),
    "gfpgan": (("gfpgan_v1_4", "gfpgan_v1_clean"), ("parsenet",)),
}
"""`--enhance` name -> the registry checkpoints it needs (alternatives: the first found wins;
GFPGAN v1.4 before v1.3: more detail and a closer likeness, by its authors' account)."""
