"""The one exception the library raises for bad input."""


class InputError(ValueError):
    """An input that cannot be used, with a reason a person can act on.

    `source` names the input (a path, or a short description of bytes); `str()` gives one line
    "source: reason", which is what the CLI and the service print.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
