"""The one error type of :mod:`lars_ref.data`.

Every problem with what the user pointed at (no data directory, a missing or
corrupt file, an unknown dataset name) raises :class:`DataError`, a
``UserError`` whose one-line message names the file and says what to do.
"""
from __future__ import annotations

from lars_ref.errors import UserError


class DataError(UserError):
    """A dataset cannot be found, read or trusted; the message names the fix."""
