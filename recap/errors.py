"""Errors meant for the person at the keyboard: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class RecapError(Exception):
    """A problem with the user's input or environment; the message names it and, where possible, the fix."""
