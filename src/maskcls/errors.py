"""The one exception type for user mistakes: the CLI prints its message and exits with code 2."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad CSV, bad setting). The message must say what and where."""
