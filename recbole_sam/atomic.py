"""Write files so that a crash or an interruption never leaves a half-written one behind."""

import json
import os
import uuid
from pathlib import Path


def write_atomically(target, save):
    """Call ``save(path)`` on a side file next to ``target``, then rename it to ``target``.

    Readers see the old file or the new one, never part of one. The side file is hidden, is
    removed on any failure, and ends in the target's suffix (``np.savez`` and ``savefig`` go by
    it); it lives in the target's folder because ``os.replace`` is atomic only within one file
    system.

    Args:
        target (str or Path): the file to write; its folder is created if missing.
        save (callable): writes the whole file to the path it is given.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.stem}.{uuid.uuid4().hex[:8]}.partial{target.suffix}"
    try:
        save(str(partial))
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()


def write_text(target, text):
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_atomically(target, lambda path: Path(path).write_text(text, encoding="utf-8"))


def write_json(target, data, indent=2):
    """Write ``data`` as JSON to ``target`` atomically; values JSON cannot hold are written as text."""
    write_text(target, json.dumps(data, indent=indent, default=str))
