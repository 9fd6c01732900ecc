"""Turn command-line and ``config_dict`` strings into values without evaluating them.

RecBole's ``Config`` calls ``eval()`` on such strings, so ``--rho="print('x') or 0.1"`` runs
the print and ``--rho=1/0`` ends in a ZeroDivisionError. Here a string is read as a literal,
the way YAML reads a value: numbers, ``True``/``False`` (any case), ``None``, lists, tuples and
dicts of those become values; bare words (``SASRec``, ``NDCG@10``, ``dataset/``, ``ml-100k``,
``[Hit, NDCG]``'s items, file names such as ``saved/model.pth``) stay strings; anything that
looks like code (a call, ``or``/``and``, attribute access on a module or builtin such as
``math.pi``, arithmetic on numbers, a comparison, indexing) is refused.
"""

import ast
import builtins
import re

from recbole_sam.errors import ConfigError

WORDS = {"true": True, "false": False, "none": None, "null": None}
# Operators that join the parts of bare words: ml-100k, amazon-books, NDCG@10, data/beauty.
WORD_JOINERS = (ast.Sub, ast.Div, ast.MatMult)
NUMBER = (int, float, complex)
# ``nowhere.pth`` is a file name, ``math.pi`` is code: what tells them apart is the first name.
CODE_ROOTS = frozenset(dir(builtins)) | {"os", "sys", "math", "np", "numpy", "torch", "subprocess", "shutil", "random"}


class _NotALiteral(Exception):
    """Raised inside the walk with what makes the text look like code."""


def parse_literal(key, text):
    """The value that ``text`` spells, for property ``key``.

    Args:
        key (str): the property's name, for the error message.
        text (str): the value as given, e.g. ``"0.1"``, ``"[Hit, NDCG]"``, ``"ml-100k"``.

    Returns:
        the number, bool, None, list, tuple, dict or string that ``text`` spells.

    Raises:
        ConfigError: ``text`` looks like code, with ``key`` and what gave it away.
    """
    stripped = text.strip()
    if not stripped:
        return text
    try:
        tree = ast.parse(stripped, mode="eval").body
    except SyntaxError:
        return text  # dataset/, ml-100k, [0,inf): not Python at all, so a plain string
    try:
        return _value(tree, stripped)
    except _NotALiteral as error:
        raise ConfigError(
            f"{key}: {text!r} is not a value ({error}); values are read, never evaluated: "
            "write a number, True/False, a word, a [list] or a {dict}"
        ) from None


def _value(node, source):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return WORDS.get(node.id.lower(), node.id)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(item, source) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        if None in node.keys:
            raise _NotALiteral("** unpacking")
        return {_value(k, source): _value(v, source) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, source)
        if isinstance(operand, NUMBER) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.BinOp, ast.Attribute)) and _is_bare_word(node):
        return ast.get_source_segment(source, node)
    raise _NotALiteral(_what(node))


def _is_bare_word(node):
    """Names, numbers and file names (``name.ext``) joined by - / @, with at least one name: a
    word or a path, not arithmetic and not attribute access on a module or builtin."""
    parts, has_name = [node], False
    while parts:
        part = parts.pop()
        if isinstance(part, ast.BinOp) and isinstance(part.op, WORD_JOINERS):
            parts += [part.left, part.right]
        elif isinstance(part, ast.Attribute):
            parts.append(part.value)
            has_name = True
            root = part.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if not isinstance(root, ast.Name) or root.id in CODE_ROOTS:
                return False
        elif isinstance(part, ast.Name):
            has_name = True
        elif not (isinstance(part, ast.Constant) and isinstance(part.value, (int, float))):
            return False
    return has_name


def _what(node):
    kinds = {
        ast.Call: "a call",
        ast.Attribute: "attribute access",
        ast.BoolOp: "and/or",
        ast.BinOp: "arithmetic",
        ast.UnaryOp: "an operator",
        ast.Compare: "a comparison",
        ast.Subscript: "indexing",
        ast.Lambda: "a lambda",
    }
    for kind, what in kinds.items():
        if isinstance(node, kind):
            return what
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).lower()


def parse_overrides(args):
    """``['--epochs=3', '--learning_rate', '0.01']`` -> ``{'epochs': '3', 'learning_rate': '0.01'}``.

    Values stay strings; ``SAMConfig`` reads them with ``parse_literal``.

    Raises:
        ConfigError: an argument that is not ``--key=value`` or ``--key value``.
    """
    overrides, rest = {}, list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"command line: unexpected argument {arg!r} (allowed: --key=value or --key value)")
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if not rest or rest[0].startswith("--"):
                raise ConfigError(f"command line: --{key} needs a value (allowed: --{key}=VALUE or --{key} VALUE)")
            value = rest.pop(0)
        overrides[key] = value
    return overrides


def parse_settings(items, option="set"):
    """``['hidden_size=16', 'neg_exclude=user']`` -> ``{'hidden_size': 16, 'neg_exclude': 'user'}``.

    Args:
        items (list of str): ``KEY=VALUE`` strings (e.g. repeated ``--set`` options).
        option (str): the option's name, for the error message.

    Returns:
        dict: the keys with their values read by ``parse_literal``.

    Raises:
        ConfigError: an item that is not ``KEY=VALUE``, or a value that looks like code.
    """
    settings = {}
    for item in items:
        key, has_value, value = item.partition("=")
        if not has_value or not key:
            raise ConfigError(f"{option}: {item!r} is not KEY=VALUE")
        settings[key] = parse_literal(key, value)
    return settings
