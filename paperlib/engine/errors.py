"""paperlib's error types: a bad input gets one `PaperlibError` before any compute, and the command line
prints it as one line (exit code 2; the traceback only with `--debug`). docs/errors.md lists the inputs."""

from __future__ import annotations


class PaperlibError(ValueError):
    """A bad input (argument, file, folder, setting), said in one line: what was given and what is allowed."""


class NonFiniteError(PaperlibError):
    """A metric's input holds NaN or inf values (a diverged model's scores, a corrupted log)."""


class CacheWarning(UserWarning):
    """A cache entry failed its integrity check (it is rebuilt, never served)."""
