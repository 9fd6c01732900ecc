"""The exception types for bad user input and interruptions, and how the command lines report them."""

import argparse
import signal
import sys
from contextlib import contextmanager


class ConfigError(ValueError):
    """Bad input from the user. The message names the key and the allowed values, and fits on
    one line: the command line prints it as is, without a traceback."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run; the message says how to resume it."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``error: ...``, and exit code 2, as in the rest of recbole-sam."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


class _Signals:
    """The signal that ended the block last (SIGINT unless SIGTERM came): the exit code is
    128 + its number, as shells report a process killed by it (130 Ctrl-C, 143 SIGTERM)."""

    received = signal.SIGINT


def _terminate(signum, frame):
    _Signals.received = signum
    raise KeyboardInterrupt


@contextmanager
def exit_on_user_error(interrupted="interrupted"):
    """For command lines: a ``ConfigError`` becomes one ``error: ...`` line on stderr and exit
    code 2; Ctrl-C and SIGTERM print ``interrupted`` (an ``Interrupted``'s own message, which
    says how to resume) and exit with 130 (Ctrl-C) or 143 (SIGTERM), the shell's codes for a
    process those signals end. Other errors keep their traceback.

    SIGTERM is turned into ``KeyboardInterrupt`` inside the block, so that half-written files
    are removed on the way out as they are on Ctrl-C.
    """
    previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    _Signals.received = signal.SIGINT
    try:
        yield
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as error:
        print(str(error) if isinstance(error, Interrupted) else interrupted, file=sys.stderr)
        sys.exit(128 + int(_Signals.received))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
