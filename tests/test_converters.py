"""Dataset converters: S3Rec files and raw Amazon / Yelp dumps to RecBole atomic files.

Every test writes its own small input files; none reads the shared benchmark datasets.
"""

import gzip
import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from recbole.data import create_dataset

import recbole_sam.atomic
from recbole_sam.config import SAMConfig
from recbole_sam.property_files import properties_dir
from recbole_sam.data.converters import convert_amazon, convert_s3rec, convert_yelp
from recbole_sam.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

# Users u1..u5 each rate items A..E: a 5-core on its own. u6 rates A..D and X; X is also rated
# by u7..u9, who rate nothing else. Round one drops u7..u9 and X (4 ratings); only then does u6
# fall to 4 and go in round two. One round would wrongly keep u6.
CORE_USERS = [f"u{n}" for n in range(1, 6)]
CORE_ITEMS = list("ABCDE")
RAW = [(user, item) for user in CORE_USERS for item in CORE_ITEMS]
RAW += [("u6", item) for item in "ABCDX"] + [(user, "X") for user in ("u7", "u8", "u9")]


def write_s3rec(folder, name, sequences, attributes):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{user} {' '.join(items)}\n" for user, items in sequences.items()]
    (folder / f"{name}.txt").write_text("".join(lines))
    (folder / f"{name}_item2attributes.json").write_text(json.dumps(attributes))


def read_atomic(path):
    lines = Path(path).read_text().split("\n")
    assert lines[-1] == ""  # one trailing newline, no half-written last line
    return lines[0], [line.split("\t") for line in lines[1:-1]]


def sequences_in(inter_file):
    header, rows = read_atomic(inter_file)
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    sequences = defaultdict(list)
    for user, item, timestamp in rows:
        sequences[user].append((float(timestamp), item))
    for pairs in sequences.values():
        assert [time for time, _ in pairs] == list(range(1, len(pairs) + 1))
    return {user: [item for _, item in pairs] for user, pairs in sequences.items()}


def attributes_in(item_file):
    header, rows = read_atomic(item_file)
    assert header == "item_id:token\tcategories:token_seq"
    return {item: categories.split() for item, categories in rows}


def write_lines(path, lines, gzipped=False):
    text = "".join(line + "\n" for line in lines)
    if gzipped:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


# S3Rec files


def test_s3rec_round_trip_keeps_order_and_attributes(tmp_path):
    sequences = {"1": ["1", "2", "3", "2", "4"], "2": ["5", "3", "1", "6", "7", "2"]}
    write_s3rec(tmp_path / "src", "Tiny", sequences, {"1": [3, 4], "2": [4], "9": [1]})

    counts = convert_s3rec("Tiny", tmp_path / "src", tmp_path / "out")

    assert (counts["users"], counts["items"], counts["interactions"]) == (2, 7, 11)
    assert sequences_in(tmp_path / "out" / "Tiny" / "Tiny.inter") == sequences
    # Every item that occurs, once; no attributes -> empty; item 9 never occurs -> left out.
    attributes = attributes_in(tmp_path / "out" / "Tiny" / "Tiny.item")
    assert attributes == {"1": ["3", "4"], "2": ["4"], "3": [], "4": [], "5": [], "6": [], "7": []}


def test_recbole_leave_one_out_split_matches_the_papers(tmp_path):
    # Named Beauty so that properties/dataset/Beauty.yaml supplies load_col and eval_args.
    sequences = {str(user): [str(item) for item in range(user, user + 5 + user % 3)] for user in range(1, 9)}
    sequences["3"] = ["4", "9", "4", "6", "5"]  # a repeated item
    write_s3rec(tmp_path / "src", "Beauty", sequences, {"4": [7, 8]})
    convert_s3rec("Beauty", tmp_path / "src", tmp_path)

    config = SAMConfig("SASRec", "Beauty", config_dict={"data_path": str(tmp_path), "show_progress": False})
    dataset = create_dataset(config)
    train, valid, test = dataset.build()

    def rows(part):
        users = dataset.id2token("user_id", part.inter_feat["user_id"].numpy())
        items = dataset.id2token("item_id", part.inter_feat["item_id"].numpy())
        histories = [
            list(dataset.id2token("item_id", row[:length].numpy()))
            for row, length in zip(part.inter_feat["item_id_list"], part.inter_feat["item_length"])
        ]
        return list(zip(users, items, histories))

    assert {user: (item, history) for user, item, history in rows(test)} == {
        user: (items[-1], items[:-1]) for user, items in sequences.items()
    }
    assert {user: item for user, item, _ in rows(valid)} == {user: items[-2] for user, items in sequences.items()}
    trained = defaultdict(list)
    for user, item, _ in rows(train):
        trained[user].append(item)
    assert trained == {user: items[1:-2] for user, items in sequences.items()}
    # The .item attributes reach RecBole as the token_seq field S3Rec reads.
    categories = dataset.item_feat["categories"][dataset.token2id("item_id", "4")]
    assert set(dataset.id2token("categories", categories[categories > 0].numpy())) == {"7", "8"}


def test_dataset_properties_agree():
    names = ("Beauty", "Sports_and_Outdoors", "Yelp", "LastFM")
    settings = {name: yaml.safe_load((properties_dir() / "dataset" / f"{name}.yaml").read_text()) for name in names}
    beauty = settings["Beauty"]
    assert all(value == beauty for value in settings.values())
    assert beauty["eval_args"] == {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"}
    assert beauty["load_col"] == {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "categories"]}
    assert "data_path" not in beauty


# Raw dumps


@pytest.mark.parametrize("gzipped", [False, True])
def test_amazon_iterative_five_core_time_order_and_meta(tmp_path, gzipped):
    # Written in reverse; u1's times tie E with C, which the file lists first: B D A E C.
    u1_times = {"E": 300, "D": 100, "C": 300, "B": 0, "A": 200}
    lines = []
    for n, (user, item) in reversed(list(enumerate(RAW))):
        time = u1_times[item] if user == "u1" else 1000 + n
        record = {"reviewerID": user, "asin": item, "unixReviewTime": time, "overall": 5.0}
        lines.append(json.dumps(record) if n % 2 else repr(record))  # the 2014 dumps' dict literals
    reviews = write_lines(tmp_path / ("reviews.json.gz" if gzipped else "reviews.json"), lines, gzipped)
    meta = write_lines(
        tmp_path / "meta.json",
        [repr({"asin": "A", "brand": "Nice Brand", "categories": [["Beauty", "Skin Care", "Face"], ["Beauty", "Tools"]]}),
         repr({"asin": "X", "brand": "Gone"}),
         repr({"asin": "B", "categories": [["Beauty"]]})],
    )

    counts = convert_amazon("Beauty", reviews, tmp_path / "out", meta=meta)

    assert (counts["users"], counts["items"], counts["interactions"]) == (5, 5, 25)
    sequences = sequences_in(counts["inter_file"])
    assert sorted(sequences) == CORE_USERS
    assert sequences["u1"] == ["B", "D", "A", "E", "C"]
    assert all(sequences[user] == CORE_ITEMS for user in CORE_USERS[1:])
    assert attributes_in(counts["item_file"]) == {
        "A": ["Nice_Brand", "Skin_Care", "Face", "Tools"], "B": [], "C": [], "D": [], "E": [],
    }


def test_yelp_iterative_five_core_date_order_and_categories(tmp_path):
    lines = []
    for n, (user, item) in enumerate(RAW):
        day = 28 - n % 20 if user == "u2" else 1 + n % 20  # u2 reviewed in reverse
        lines.append(json.dumps({"user_id": user, "business_id": item, "date": f"2019-03-{day:02d} 12:00:00"}))
    reviews = write_lines(tmp_path / "review.json", lines)
    business = write_lines(
        tmp_path / "business.json",
        [json.dumps({"business_id": "A", "categories": "Restaurants, Pizza"}),
         json.dumps({"business_id": "B", "categories": None}),
         json.dumps({"business_id": "C", "categories": ["Bars", "Night Life"]})],
    )

    counts = convert_yelp("Yelp", reviews, tmp_path / "out", business=business)

    assert (counts["users"], counts["items"], counts["interactions"]) == (5, 5, 25)
    sequences = sequences_in(counts["inter_file"])
    assert sequences["u2"] == CORE_ITEMS[::-1]
    assert sequences["u1"] == CORE_ITEMS
    assert attributes_in(counts["item_file"]) == {
        "A": ["Restaurants", "Pizza"], "B": [], "C": ["Bars", "Night_Life"], "D": [], "E": [],
    }


# Errors


@pytest.mark.parametrize(
    "convert, lines, message",
    [
        (convert_amazon, ['{"reviewerID": "u1", "asin": "A", "unixReviewTime": 1}', "", "{'reviewerID': 'u1', 'asin'"],
         "line 3: not a JSON object"),
        (convert_amazon, ['{"reviewerID": "u1", "unixReviewTime": 1}'], "line 1: missing field 'asin'"),
        (convert_yelp, ['{"user_id": "u1", "business_id": "A", "date": "03/01/2019"}'], "line 1: time data"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, convert, lines, message):
    reviews = write_lines(tmp_path / "reviews.json.gz", lines, gzipped=True)
    with pytest.raises(ConfigError, match=f"{reviews}, {message}"):
        convert("Bad", reviews, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_malformed_s3rec_line_names_file_and_line(tmp_path):
    write_s3rec(tmp_path, "Bad", {"1": ["1", "2"]}, {})
    with open(tmp_path / "Bad.txt", "a") as f:
        f.write("2\n")  # a user without items
    with pytest.raises(ConfigError, match=r"Bad\.txt, line 2: expected 'user_id item_1"):
        convert_s3rec("Bad", tmp_path, tmp_path / "out")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"Nope\.txt: no such file"):
        convert_s3rec("Nope", tmp_path, tmp_path / "out")
    reviews = write_lines(tmp_path / "review.json", ['{"user_id": "u", "business_id": "b", "date": "2019-01-01 00:00:00"}'])
    with pytest.raises(ConfigError, match=r"business\.json: no such file"):
        convert_yelp("Yelp", reviews, tmp_path / "out", business=tmp_path / "business.json")


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    write_s3rec(tmp_path, "Tiny", {"1": ["1", "2", "3"]}, {})
    convert_s3rec("Tiny", tmp_path, tmp_path / "out")
    before = (tmp_path / "out" / "Tiny" / "Tiny.inter").read_text()
    write_s3rec(tmp_path, "Tiny", {"1": ["4", "5", "6", "7"]}, {})

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(recbole_sam.atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_s3rec("Tiny", tmp_path, tmp_path / "out")
    assert (tmp_path / "out" / "Tiny" / "Tiny.inter").read_text() == before
    assert sorted(path.name for path in (tmp_path / "out" / "Tiny").iterdir()) == ["Tiny.inter", "Tiny.item", "Tiny.yaml"]


# Command line


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare", REPO / "dataset" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_prints_counts_and_exits_2_on_bad_input(tmp_path, capsys):
    prepare = load_prepare()
    write_s3rec(tmp_path, "Tiny", {"1": ["1", "2", "3"], "2": ["2", "3", "4", "5"]}, {})

    assert prepare.main(["s3rec", "--name", "Tiny", "--src", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "2 users, 5 items, 7 interactions" in capsys.readouterr().out

    assert prepare.main(["amazon", "--reviews", str(tmp_path / "missing.json"), "--name", "B", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.json'}: no such file")
