"""Errors a user can cause, each carrying the cause and the fix.

The CLI turns a :class:`UserError` into one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's configuration or input, with a suggested fix."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause} ({fix})" if fix else cause)


class ConfigError(UserError):
    """A protocol, spec or parameter that cannot be used as given."""


class PluginError(UserError):
    """A plugin that clashes with another, or breaks the component contract."""


class DataError(UserError):
    """A dataset that cannot serve the protocol (too small, unreadable, wrong shape)."""


class ComponentError(PluginError):
    """A component's own code raised while the run was executing; the traceback is kept for its author."""

    def __init__(self, who: str, action: str, exc: BaseException) -> None:
        import traceback

        self.traceback = "".join(traceback.format_exception(exc))
        super().__init__(
            f"{who} raised {type(exc).__name__}: {exc} (in {action})",
            "fix or report the plugin; the traceback is in the run's failures.jsonl and finished generations are kept",
        )
