"""One-line descriptions of the errors a user's input can cause."""
from __future__ import annotations


def describe(exc: BaseException) -> str:
    """A single line naming what went wrong, never a traceback."""
    from vmxlint.tree import TreeError

    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, TreeError) or type(exc).__name__ in (
            "MailError", "ConfigError", "ModelError"):
        text = str(exc)
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); please report it"
    return " ".join(text.split()) or type(exc).__name__
