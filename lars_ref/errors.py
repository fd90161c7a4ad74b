"""The one base class of the mistakes a user can make (a bad name, path, file or setting).

``lars-ref`` prints any ``UserError`` as one line ``lars-ref: error: <message>`` and
exits with status 2; anything else is a bug and keeps its traceback. Each package
keeps its own subclass (``ConfigError``, ``DataError``, ``CheckpointError``, ...) so
that a test can ask for the precise kind.

Introduced in ``docs/architecture.md``.
"""


class UserError(ValueError):
    """A mistake in what the user typed or pointed at; the message says what to do."""
