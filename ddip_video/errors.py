"""Errors a user can cause and fix: the CLI prints them as one line and exits with status 2."""


class InputError(Exception):
    """Bad input (missing file, not a video, zero frames, a bad option value).

    ``str(error)`` is the whole message the user sees: one line, no traceback.
    """
