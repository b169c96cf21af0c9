"""The one exception type for user mistakes: the CLI prints its message and exits with code 2."""

import re


class UserError(Exception):
    """A problem the user can fix (bad path, bad CSV, bad setting). The message must say what and where."""


def user_message(exc: UserError) -> str:
    """The user's message, without the worker traceback a DataLoader worker wraps around it.

    A UserError raised in a DataLoader worker (a photo that does not decode) is re-raised in the main
    process with the worker's whole traceback in its text; the user needs only the last line.
    """
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    # The worker's last line reads "maskcls.<module>.<ErrorClass>: message".
    return re.sub(r"^maskcls(?:\.\w+)+: ", "", last)
