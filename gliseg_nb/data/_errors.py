"""Kept for imports inside `gliseg_nb.data`: the exception types live in `gliseg_nb.errors`."""

from ..errors import DataError

__all__ = ["DataError"]
