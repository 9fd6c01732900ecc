"""A user's own data, unique checkpoints, and one-line errors for malformed files."""

import importlib.util
import os
from pathlib import Path

import pytest

from recbole_sam.data.converters import convert_s3rec
from recbole_sam.errors import ConfigError
from recbole_sam.quick_start import run_recbole_sam

REPO = Path(__file__).resolve().parent.parent
SMALL_MODEL = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "epochs": 1, "show_progress": False,
               "state": "WARNING", "eval_batch_size": 4096}


def write_toys(folder):
    """S3Rec-format files of 'Toys', a dataset recbole-sam has no property file for."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{user} " + " ".join(str(1 + (user * 7 + step * 3) % 40) for step in range(6 + user % 5)) for user in range(1, 61)]
    (folder / "Toys.txt").write_text("\n".join(lines) + "\n")
    (folder / "Toys_item2attributes.json").write_text('{"1": [1, 2], "2": [3]}')
    return folder


def test_a_converted_dataset_trains_without_hand_written_yaml(tmp_path):
    convert_s3rec("Toys", write_toys(tmp_path / "src"), "data")
    assert Path("data/Toys/Toys.yaml").is_file()
    result = run_recbole_sam("SASRec", "Toys", config_dict=dict(SMALL_MODEL, data_path="data/"))
    assert set(result["test_result"]) == {"hit@10", "ndcg@10"}
    s3rec = run_recbole_sam("S3Rec", "Toys", config_dict=dict(SMALL_MODEL, data_path="data/", pretrain_epochs=1, save_step=1))
    assert os.path.isfile(s3rec["pretrained_checkpoint"])  # categories reached S3Rec as its attribute


def test_a_dataset_without_its_property_file_is_one_line_naming_what_is_missing(tmp_path):
    convert_s3rec("Toys", write_toys(tmp_path / "src"), "data")
    os.remove("data/Toys/Toys.yaml")
    with pytest.raises(ConfigError, match=r"load_col: the run needs the field 'timestamp' of data/Toys/Toys\.inter.*Toys\.yaml, which dataset/prepare\.py writes"):
        run_recbole_sam("SASRec", "Toys", config_dict=dict(SMALL_MODEL, data_path="data/"))
    assert not os.path.exists("log") and not os.path.exists("saved")


@pytest.mark.parametrize(
    "line, problem",
    [("u1\tA", "line 3: 2 fields, the header has 3"), ("u1\tA\tyesterday", "line 3: timestamp:float is not a number: 'yesterday'")],
)
def test_a_malformed_atomic_file_is_one_line_naming_file_and_line(tmp_path, line, problem):
    convert_s3rec("Toys", write_toys(tmp_path / "src"), "data")
    inter = Path("data/Toys/Toys.inter")
    rows = inter.read_text().splitlines()
    inter.write_text("\n".join(rows[:2] + [line] + rows[2:]) + "\n")
    with pytest.raises(ConfigError, match=f"^data/Toys/Toys.inter, {problem}"):
        run_recbole_sam("SASRec", "Toys", config_dict=dict(SMALL_MODEL, data_path="data/"))
    assert not os.path.exists("log")


def test_converter_refuses_a_line_that_is_not_ids(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("prepare", REPO / "dataset" / "prepare.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    src = write_toys(tmp_path / "src")
    with open(src / "Toys.txt", "a") as f:
        f.write("not numbers here\n")
    assert prepare.main(["s3rec", "--name", "Toys", "--src", str(src), "--out", "data"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {src / 'Toys.txt'}, line 61: expected 'user_id item_1 ... item_n' (integer ids) with a new user_id, got 'not numbers here'"]


def test_two_s3rec_pretrainings_keep_two_files(tiny_config):
    settings = dict(tiny_config, train_stage="pretrain", pretrain_epochs=1, save_step=1)
    first = run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(settings))
    second = run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(settings))
    files = sorted(Path("saved").glob("*-pretrain-1.pth"))
    assert len(files) == 2
    assert sorted(path.name.split("-pretrain-")[0] for path in files) == sorted([first["run_id"], second["run_id"]])
