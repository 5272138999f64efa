"""Exceptions in the log without their messages: a message may quote the input (a patient's name or id
in a validation error, SQL parameters in a database error), and the log must hold no patient data.
The exception's class and the code path (file, line, function, source line) are kept; values are not."""

from __future__ import annotations

import traceback


def describe_failure(exc: BaseException) -> str:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{exc.__class__.__module__}.{exc.__class__.__qualname__} (message withheld: it may quote patient " \
           f"data)\n{frames}".rstrip()
