"""Convert sequential-recommendation datasets into RecBole atomic files.

Every converter writes ``<out_dir>/<name>/<name>.inter`` (``user_id:token item_id:token
timestamp:float``), ``<name>.item`` (``item_id:token categories:token_seq``) and the dataset's
property file ``<name>.yaml`` (columns, split, ranking, attribute field), which ``SAMConfig``
reads from beside the atomic files: a converted dataset needs no hand-written YAML. The timestamp
is the item's position in its user's sequence (1, 2, ...): RecBole's leave-one-out split with
``order: TO`` then gives exactly the papers' split (last item test, second-to-last valid),
whatever ties the raw times had. Sources:

- S3Rec's processed files (``NAME.txt``, ``NAME_item2attributes.json``), which the SAMRec,
  S3Rec and CL4SRec papers use;
- raw Amazon 2014 and Yelp review dumps, filtered to the iterative 5-core as S3Rec did.
"""

import ast
import gzip
import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from recbole_sam.atomic import write_atomically
from recbole_sam.errors import ConfigError

CORE = 5
YELP_DATE = "%Y-%m-%d %H:%M:%S"
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER = "item_id:token\tcategories:token_seq"
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's FeatureType values
DATASET_PROPERTIES = """\
# {name}, converted by dataset/prepare.py: RecBole atomic files beside this file.
load_col:                       # (dict) Atomic file suffix: (list) columns to load.
  inter: [user_id, item_id, timestamp]  # (list) timestamp is the position in the user's sequence.
  item: [item_id, categories]   # (list) categories: the item's attribute ids (token_seq).
item_attribute: categories      # (str) Item field that S3Rec pre-trains on.
MAX_ITEM_LIST_LENGTH: 50        # (int) Longest history fed to the model, as in the papers.
rm_dup_inter: ~                 # (str) Keep repeated user-item interactions.
val_interval: ~                 # (dict) No filtering by field values.
user_inter_num_interval: "[0,inf)"  # (str) Keep every user (the files are already 5-core).
item_inter_num_interval: "[0,inf)"  # (str) Keep every item.
eval_args:                      # (dict) Leave-one-out in time order, ranking over all items.
  split: {{'LS': 'valid_and_test'}}  # (dict) Last item test, second-to-last valid, the rest train.
  group_by: user                # (str) Split each user's sequence.
  order: TO                     # (str) Time order (by timestamp).
  mode: full                    # (str) Rank every item, no sampled negatives.
"""


def convert_s3rec(name, src_dir, out_dir):
    """Convert S3Rec's ``NAME.txt`` and ``NAME_item2attributes.json`` from ``src_dir``.

    Args:
        name (str): the dataset name, e.g. ``Beauty``.
        src_dir (str or Path): the folder holding the two S3Rec files.
        out_dir (str or Path): where ``<name>/`` is written.

    Returns:
        dict: ``users``, ``items``, ``interactions`` and the two written paths.
    """
    src = Path(src_dir)
    sequences = _read_s3rec_sequences(src / f"{name}.txt")
    attributes = _read_s3rec_attributes(src / f"{name}_item2attributes.json")
    return write_atomic_files(name, sequences, attributes, out_dir)


def convert_amazon(name, reviews, out_dir, meta=None):
    """Convert an Amazon 2014 review dump (JSON or Python-literal lines, optionally gzipped).

    Args:
        name (str): the dataset name, e.g. ``Beauty``.
        reviews (str or Path): reviews with ``reviewerID``, ``asin`` and ``unixReviewTime``.
        out_dir (str or Path): where ``<name>/`` is written.
        meta (str or Path, optional): item metadata; its brand and categories become attributes.

    Returns:
        dict: ``users``, ``items``, ``interactions`` and the two written paths.
    """
    _check_files(reviews, meta)
    interactions = _read_interactions(reviews, "reviewerID", "asin", _amazon_time)
    sequences = sequences_by_user(kcore_filter(interactions))
    attributes = _read_attributes(meta, "asin", sequences, _amazon_attributes) if meta else {}
    return write_atomic_files(name, sequences, attributes, out_dir)


def convert_yelp(name, reviews, out_dir, business=None):
    """Convert a Yelp review dump (JSON lines, optionally gzipped).

    Args:
        name (str): the dataset name, e.g. ``Yelp``.
        reviews (str or Path): reviews with ``user_id``, ``business_id`` and ``date``.
        out_dir (str or Path): where ``<name>/`` is written.
        business (str or Path, optional): businesses; their categories become attributes.

    Returns:
        dict: ``users``, ``items``, ``interactions`` and the two written paths.
    """
    _check_files(reviews, business)
    interactions = _read_interactions(reviews, "user_id", "business_id", _yelp_time)
    sequences = sequences_by_user(kcore_filter(interactions))
    attributes = _read_attributes(business, "business_id", sequences, _yelp_categories) if business else {}
    return write_atomic_files(name, sequences, attributes, out_dir)


def kcore_filter(interactions, k=CORE):
    """Keep the interactions whose user and item both have at least ``k`` of them.

    Dropping a user can push an item below ``k`` and the other way round, so repeat until
    a round removes nothing.

    Args:
        interactions (list): ``(user, item, time)`` tuples.
        k (int): the minimum number of interactions per user and per item.

    Returns:
        list: the kept tuples, in their original order.
    """
    while True:
        users = Counter(user for user, _, _ in interactions)
        items = Counter(item for _, item, _ in interactions)
        kept = [row for row in interactions if users[row[0]] >= k and items[row[1]] >= k]
        if len(kept) == len(interactions):
            return kept
        interactions = kept


def sequences_by_user(interactions):
    """Group ``(user, item, time)`` tuples into each user's items in time order.

    Returns:
        dict: user -> list of items; ties in time keep their order in ``interactions``.
    """
    rows = {}
    for user, item, time in interactions:
        rows.setdefault(user, []).append((time, item))
    return {user: [item for _, item in sorted(pairs, key=lambda pair: pair[0])] for user, pairs in rows.items()}


def write_atomic_files(name, sequences, attributes, out_dir):
    """Write ``<out_dir>/<name>/<name>.inter`` and ``.item``, each replaced atomically.

    Args:
        name (str): the dataset name.
        sequences (dict): user -> items in time order.
        attributes (dict): item -> attribute tokens; items without an entry get none.
        out_dir (str or Path): the parent folder of ``<name>/``.

    Returns:
        dict: ``users``, ``items``, ``interactions``, ``inter_file`` and ``item_file``.
    """
    if not sequences:
        raise ConfigError(f"{name}: no interactions left to write")
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    inter_lines, items = [INTER_HEADER], {}
    for user, sequence in sequences.items():
        for position, item in enumerate(sequence, start=1):
            inter_lines.append(f"{user}\t{item}\t{position}")
            items.setdefault(item)
    item_lines = [ITEM_HEADER] + [f"{item}\t{' '.join(attributes.get(item, ()))}" for item in items]
    inter_file, item_file, properties_file = (folder / f"{name}.{suffix}" for suffix in ("inter", "item", "yaml"))
    _write_lines(inter_file, inter_lines)
    _write_lines(item_file, item_lines)
    _write_lines(properties_file, DATASET_PROPERTIES.format(name=name).splitlines())
    return {
        "users": len(sequences),
        "items": len(items),
        "interactions": len(inter_lines) - 1,
        "inter_file": str(inter_file),
        "item_file": str(item_file),
        "properties_file": str(properties_file),
    }


def check_atomic_files(config):
    """Raise one ``ConfigError`` naming file, line and problem for a malformed atomic file the
    run loads (``.inter``, and ``.item`` when present); RecBole would fail with a pandas traceback.

    Args:
        config (Config): supplies ``data_path``, ``dataset``, ``field_separator`` and ``benchmark_filename``.
    """
    folder, name = config["data_path"], config["dataset"]
    parts = config["benchmark_filename"] or [None]
    files = [Path(folder) / (f"{name}.{part}.inter" if part else f"{name}.inter") for part in parts]
    files.append(Path(folder) / f"{name}.item")
    for path in files:
        if path.is_file():
            check_atomic_file(path, config["field_separator"] or "\t")


def check_atomic_file(path, separator="\t"):
    """Check one atomic file: a ``name:type`` header, the same number of fields on every line,
    numbers in the float columns.

    Raises:
        ConfigError: ``<path>, line <n>: <problem>``.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split(separator)
        floats = [i for i, field in enumerate(header) if _field_type(path, field) == "float"]
        for number, line in enumerate(f, start=2):
            fields = line.rstrip("\r\n").split(separator)
            if len(fields) != len(header):
                if not line.strip():
                    continue
                raise ConfigError(f"{path}, line {number}: {len(fields)} fields, the header has {len(header)} ({separator!r}-separated)")
            for i in floats:
                _require_number(path, number, header[i], fields[i])


def _field_type(path, field):
    name, _, kind = field.partition(":")
    if not name or kind not in FIELD_TYPES:
        raise ConfigError(f"{path}, line 1: header field {field!r} is not name:type with type one of {', '.join(FIELD_TYPES)}")
    return kind


def _require_number(path, number, field, value):
    if not value.strip():
        return  # RecBole fills missing values
    try:
        float(value)
    except ValueError:
        raise ConfigError(f"{path}, line {number}: {field} is not a number: {value[:40]!r}") from None


def _write_lines(path, lines):
    def save(temporary):
        with open(temporary, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")

    write_atomically(path, save)


def _check_files(*paths):
    # Fail before minutes of reading the reviews, not after.
    for path in paths:
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: no such file")


def _open_text(path):
    _check_files(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def _numbered_lines(path):
    """Yield ``("<path>, line <n>", line)`` for each non-blank line of a text or gzip file."""
    number = 0
    try:
        with _open_text(path) as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield f"{path}, line {number}", line
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}, line {number + 1}: cannot read: {error}") from None


def _read_records(path):
    """Yield ``(where, dict)`` per line: JSON, or the Python dict literals of Amazon's 2014 dumps."""
    for where, line in _numbered_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            try:
                record = ast.literal_eval(line.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                record = None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: not a JSON object or Python dict literal: {line.strip()[:80]!r}")
        yield where, record


def _field_error(where, error):
    if isinstance(error, KeyError):
        return ConfigError(f"{where}: missing field {error}")
    return ConfigError(f"{where}: {error}")


def _token(value):
    # RecBole splits columns on tabs and token_seq values on spaces: neither may sit in a token.
    token = "_".join(str(value).split()) if value is not None else ""
    if not token:
        raise ValueError(f"empty id {value!r}")
    return sys.intern(token)  # ids repeat millions of times in the raw dumps


def _read_interactions(path, user_key, item_key, time_of):
    interactions = []
    for where, record in _read_records(path):
        try:
            interactions.append((_token(record[user_key]), _token(record[item_key]), time_of(record)))
        except (KeyError, TypeError, ValueError) as error:
            raise _field_error(where, error) from None
    return interactions


def _read_attributes(path, id_key, sequences, attributes_of):
    wanted = {item for sequence in sequences.values() for item in sequence}
    attributes = {}
    for where, record in _read_records(path):
        try:
            item = _token(record[id_key])
            if item in wanted:
                attributes[item] = [_token(value) for value in attributes_of(record) if str(value).strip()]
        except (KeyError, TypeError, ValueError) as error:
            raise _field_error(where, error) from None
    return attributes


def _amazon_time(record):
    return float(record["unixReviewTime"])


def _yelp_time(record):
    return datetime.strptime(record["date"], YELP_DATE)


def _amazon_attributes(record):
    # S3Rec's choice: the brand, and every category below the top one (which all items share).
    brand = record.get("brand")
    values = [brand] if brand else []
    for path in record.get("categories") or []:
        values.extend(path[1:])
    return values


def _yelp_categories(record):
    categories = record.get("categories") or []
    # A list in older dumps, one "Restaurants, Pizza" string since 2018.
    return categories.split(",") if isinstance(categories, str) else categories


def _read_s3rec_sequences(path):
    sequences = {}
    for where, line in _numbered_lines(path):
        fields = line.split()
        # S3Rec's files hold integer ids only: anything else is a different or broken file.
        if len(fields) < 2 or fields[0] in sequences or not all(field.isdigit() for field in fields):
            raise ConfigError(
                f"{where}: expected 'user_id item_1 ... item_n' (integer ids) with a new user_id, got {line.strip()[:80]!r}"
            )
        sequences[fields[0]] = fields[1:]
    return sequences


def _read_s3rec_attributes(path):
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}, line {error.lineno}: not valid JSON: {error.msg}") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(values, list) for values in data.values()):
        raise ConfigError(f'{path}: expected {{"item_id": [attribute_id, ...], ...}}')
    return {str(item): [_token(value) for value in values] for item, values in data.items()}
