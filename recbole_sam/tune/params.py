"""Read a search space: RecBole's ``.hyper`` params files, and the same lines as a dict.

A params file has one hyperparameter a line, as RecBole's ``run_hyper.py`` reads it::

    rho loguniform -4.605,0                 # natural-log exponents: rho in e^-4.605..e^0 = 0.01..1
    learning_rate choice [0.001,0.002]
    dropout_prob uniform 0.1,0.5
    hidden_size quniform 32,128,32

``choice`` takes a Python list literal, ``uniform low,high``, ``quniform low,high,q``,
``loguniform low,high`` where low and high are **natural-log exponents** (hyperopt's meaning,
which RecBole's parser passes on unchanged). Values are read with ``ast.literal_eval``, never
``eval`` (RecBole's parser ``eval``s ``choice`` lists, so a shared params file can run code).
Unlike RecBole, ``#`` comments and blank lines are allowed, and any other line that does not
parse is an error naming it. This module has no Ray in it: the search turns ``Param`` into
Tune's sampling domains (``recbole_sam.tune.space``).
"""

import ast
import math
import re
from dataclasses import dataclass

from recbole_sam.errors import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "quniform", "loguniform")


@dataclass(frozen=True)
class Param:
    """One hyperparameter of the search.

    Args:
        name (str): the config key, e.g. ``rho``.
        kind (str): one of ``DISTRIBUTIONS``.
        values (tuple): ``choice``: the values; ``uniform``/``loguniform``: ``(low, high)``;
            ``quniform``: ``(low, high, q)``. ``loguniform`` keeps RecBole's exponents.
        where (str): where it came from, for error messages (``params_file: sam.hyper line 2``).
    """

    name: str
    kind: str
    values: tuple
    where: str = ""

    @property
    def bounds(self):
        """tuple: the smallest and largest value the distribution draws (``e^low``, ``e^high`` for loguniform)."""
        if self.kind == "choice":
            return None
        low, high = self.values[:2]
        return (math.exp(low), math.exp(high)) if self.kind == "loguniform" else (low, high)

    @property
    def is_integer(self):
        """bool: a ``quniform`` whose low, high and q are whole numbers draws integers (hidden_size, n_layers)."""
        return self.kind == "quniform" and all(float(value).is_integer() for value in self.values)

    def describe(self):
        """str: one line for the start-up echo, e.g. ``rho: loguniform e^-4.605..e^0 = 0.01..1``."""
        if self.kind == "choice":
            return f"{self.name}: choice of {list(self.values)}"
        low, high = self.bounds
        if self.kind == "loguniform":
            exponents = f"e^{self.values[0]:g}..e^{self.values[1]:g}"
            return f"{self.name}: loguniform {exponents} = {low:.4g}..{high:.4g} (log-uniform)"
        step = f" in steps of {self.values[2]:g}" if self.kind == "quniform" else ""
        return f"{self.name}: {self.kind} {low:g}..{high:g}{step}"

    def sample_points(self):
        """list: values every trial may get at the extremes: each choice, or low and high."""
        return list(self.values) if self.kind == "choice" else list(self.bounds)


def _numbers(text, count, where):
    parts = [part.strip() for part in text.split(",")]
    try:
        numbers = [float(ast.literal_eval(part)) for part in parts]
    except (ValueError, SyntaxError, TypeError):
        numbers = None
    if numbers is None or len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        shape = "low,high" if count == 2 else "low,high,q"
        raise ConfigError(f"{where}: expected {shape} (numbers), got {text!r}")
    return tuple(numbers)


def parse_spec(name, kind, text, where):
    """One hyperparameter from its distribution name and values text.

    Args:
        name (str): the config key.
        kind (str): ``choice``, ``uniform``, ``quniform`` or ``loguniform``.
        text (str): the values as written, e.g. ``[0.1,0.2]`` or ``-4.6,0``.
        where (str): names the source in error messages.

    Returns:
        Param: the parsed hyperparameter.

    Raises:
        ConfigError: an unknown distribution, values that are not literals, low >= high, q <= 0.
    """
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r} for {name} (allowed: {', '.join(DISTRIBUTIONS)})")
    if kind == "choice":
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ConfigError(f"{where}: choice needs a list of literals like [0.1,0.2], got {text!r}") from None
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{where}: choice needs a non-empty list like [0.1,0.2], got {text!r}")
        return Param(name, kind, tuple(values), where)
    values = _numbers(text, 3 if kind == "quniform" else 2, where)
    if values[0] >= values[1]:
        raise ConfigError(f"{where}: {kind} needs low < high, got {values[0]:g},{values[1]:g}")
    if kind == "quniform" and values[2] <= 0:
        raise ConfigError(f"{where}: quniform needs q > 0, got {values[2]:g}")
    if kind == "loguniform" and 0 < values[0] and values[1] <= 1:
        # Values written where exponents belong (an easy slip): 0.0001,0.01 would search e^0.0001..e^0.01 = 1..1.01.
        low, high = (f"{math.log(value):.4g}" for value in values)
        raise ConfigError(
            f"{where}: loguniform takes natural-log exponents, and {values[0]:g},{values[1]:g} would search "
            f"{math.exp(values[0]):.4g}..{math.exp(values[1]):.4g}; for {name} in {values[0]:g}..{values[1]:g} "
            f"write: {name} loguniform {low},{high}"
        )
    return Param(name, kind, values, where)


def parse_line(line, where):
    """``rho loguniform -4.6,0`` -> ``Param``; ``None`` for a blank or ``#`` comment line."""
    stripped = re.sub(r"(^|\s)#.*$", "", line).strip()  # a comment starts with '#' after a space
    if not stripped:
        return None
    parts = stripped.split()
    if len(parts) < 3:
        raise ConfigError(f"{where}: expected 'name distribution values', got {line.strip()!r}")
    # RecBole joins the rest without spaces: "choice [0.1, 0.2]" is one list.
    return parse_spec(parts[0], parts[1], "".join(parts[2:]), where)


def read_params_file(path):
    """All hyperparameters of a ``.hyper`` file, in file order.

    Raises:
        ConfigError: an unreadable file, a bad line (named by its number), a key given twice,
            or a file with no hyperparameter in it.
    """
    try:
        with open(path, "r", encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise ConfigError(f"params_file: cannot read '{path}': {error.strerror}") from None
    params = []
    for number, line in enumerate(lines, start=1):
        param = parse_line(line, f"params_file: {path} line {number}")
        if param is not None:
            params.append(param)
    return _unique(params, f"params_file: {path}")


def params_from_dict(space):
    """The same hyperparameters from Python: ``{"rho": "loguniform -4.6,0", "lr": ("choice", [1e-3, 2e-3])}``.

    Raises:
        ConfigError: an entry that is neither ``"kind values"`` nor ``(kind, values)``.
    """
    params = []
    for name, spec in space.items():
        where = f"space: {name}"
        if isinstance(spec, str):
            kind, _, text = spec.strip().partition(" ")
            params.append(parse_spec(name, kind, text.replace(" ", ""), where))
        elif isinstance(spec, (list, tuple)) and len(spec) == 2:
            kind, values = spec
            text = repr(list(values)) if kind == "choice" else ",".join(repr(float(v)) for v in values)
            params.append(parse_spec(name, kind, text, where))
        else:
            raise ConfigError(f"{where}: expected 'kind values' or (kind, values), got {spec!r}")
    return _unique(params, "space")


def _unique(params, where):
    names = [param.name for param in params]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: {name} is given twice")
    if not params:
        raise ConfigError(f"{where}: no hyperparameter to search (lines like 'rho loguniform -4.6,0')")
    return params
