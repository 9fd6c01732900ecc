"""The one exception type for bad user input."""


class ConfigError(ValueError):
    """Bad input from the user. The message names the key and the allowed values, and fits on
    one line: the command line prints it as is, without a traceback."""
