"""The one exception family for bad user input: the CLIs print its message as one line, no traceback."""


class UserError(ValueError):
    """A problem the user can fix; the message names the file/line or option and the fix."""
