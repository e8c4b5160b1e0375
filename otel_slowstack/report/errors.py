"""The one exception the command turns into a one-line error and exit code 1."""


class ReportError(Exception):
    """A problem the user can act on: the message says what and, if known, how."""
