"""One exception root for the errors a user's input or setup can cause, and their text."""
from __future__ import annotations


class VmxlintError(Exception):
    """Root of every user-facing error: bad usage, unusable input, a tree or a config that
    cannot be read.  The message is printed on one line and the exit status is 2."""


class InputError(VmxlintError):
    """Input that cannot be used: unreadable files, no patch, a patch that does not apply."""


def describe(exc: BaseException) -> str:
    """A single line naming what went wrong, never a traceback."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, VmxlintError):
        text = str(exc)
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); please report it"
    return " ".join(text.split()) or type(exc).__name__
