"""The error type that reaches a person.

Anything a user can cause or fix (a bad path, a missing key, an unreachable hub) is raised as
:class:`UserError` at the layer that understands it. The CLI prints it as one line without a
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure with a message fit for a person.

    ``exit_code`` is what the CLI exits with: 1 for failures, 2 for usage errors.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
