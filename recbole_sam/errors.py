"""The one exception type for bad user input, and how the command lines report it."""

import sys
from contextlib import contextmanager


class ConfigError(ValueError):
    """Bad input from the user. The message names the key and the allowed values, and fits on
    one line: the command line prints it as is, without a traceback."""


@contextmanager
def exit_on_user_error(interrupted="interrupted"):
    """For command lines: a ``ConfigError`` becomes one ``error: ...`` line on stderr and exit
    code 2; Ctrl-C prints ``interrupted`` and exits with 130. Other errors keep their traceback."""
    try:
        yield
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
