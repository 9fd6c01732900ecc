"""Values are read as literals, never evaluated; bad values and misspelt keys are caught
before anything is written; the command line is quiet and its help lists keys and models."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from recbole_sam.cli import main
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError
from recbole_sam.literals import parse_literal

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.1", 0.1), ("1e-3", 0.001), ("-2", -2), ("True", True), ("false", False), ("None", None),
        ("SASRec", "SASRec"), ("NDCG@10", "NDCG@10"), ("dataset/", "dataset/"), ("ml-100k", "ml-100k"),
        ("[Hit, NDCG]", ["Hit", "NDCG"]), ("{'LS': 'valid_and_test'}", {"LS": "valid_and_test"}),
        ("[0,inf)", "[0,inf)"), ("saved/S3Rec-1.pth", "saved/S3Rec-1.pth"), ("amazon-books", "amazon-books"),
    ],
)
def test_literals_become_values_and_words_stay_strings(text, value):
    assert parse_literal("key", text) == value


@pytest.mark.parametrize(
    "text, what", [("1/0", "arithmetic"), ("print('x') or 0.1", "and/or"), ("__import__('os')", "a call"),
                   ("os.sep", "attribute access"), ("[1][0]", "indexing"), ("1 < 2", "a comparison")],
)
def test_code_is_refused_naming_the_key(text, what):
    with pytest.raises(ConfigError, match=rf"^rho: .* is not a value \({what}\)"):
        parse_literal("rho", text)


def run_cli(argv, tiny_config, capsys):
    overrides = [f"--{key}={value}" for key, value in tiny_config.items() if f"--{key}" not in " ".join(argv)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + overrides)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rho=1/0"], "rho: '1/0' is not a value (arithmetic)"),
        (["--rho=print('evaluated') or 0.1"], "rho: \"print('evaluated') or 0.1\" is not a value (and/or)"),
        (["--learning_rate=-1"], "learning_rate: must be a number > 0, got -1"),
        (["--epochs=abc"], "epochs: must be an integer >= 1, got 'abc'"),
        (["--epochs=-1"], "epochs: must be an integer >= 1, got -1"),
        (["--train_batch_size=0"], "train_batch_size: must be an integer >= 1, got 0"),
        (["--eval_batch_size=1.5"], "eval_batch_size: must be an integer >= 1, got 1.5"),
        (["--MAX_ITEM_LIST_LENGTH=0"], "MAX_ITEM_LIST_LENGTH: must be an integer >= 1, got 0"),
        (["--stopping_step=x"], "stopping_step: must be an integer >= 1, got 'x'"),
        (["--valid_metric=Recall@10"], "valid_metric: 'Recall@10' is not computed; computed: Hit@10, NDCG@10"),
        (["--data_path=/no/such/folder"], "data_path: no folder '/no/such/folder'"),
        (["--model=CL4SRec", "--cl_temperature=0"], "cl_temperature: must be a number > 0, got 0"),
        (["--model=S3Rec", "--item_attribute=genre"], "item_attribute: dataset 'ml-100k' has no item field 'genre'"),
        (["--model=S3Rec", "--train_stage=finetune", "--pre_model_path=none.pth"], "pre_model_path: no file 'none.pth'"),
        (["--sam_intervall=5", "--strict"], "sam_intervall: unknown key, did you mean `sam_interval`?"),
    ],
)
def test_each_bad_value_is_one_line_rc_2_and_nothing_written(argv, message, tiny_config, capsys):
    code, out, err = run_cli(argv, tiny_config, capsys)
    assert code == 2
    assert err == [f"error: {message}"] or (len(err) == 1 and err[0].startswith(f"error: {message}"))
    assert "evaluated" not in out
    assert os.listdir(".") == []  # no log/, saved/ or log_tensorboard/


def test_a_misspelt_key_gets_a_did_you_mean_warning(capsys):
    config = SAMConfig("SASRec", "ml-100k", config_dict={"sam_intervall": "5", "eval_mask_histroy": "True"})
    assert config["sam_interval"] == 1  # the default: the misspelt key changed nothing
    assert capsys.readouterr().err.splitlines() == [
        "warning: sam_intervall: unknown key, did you mean `sam_interval`? (--strict makes this an error)",
        "warning: eval_mask_histroy: unknown key, did you mean `eval_mask_history`? (--strict makes this an error)",
    ]
    SAMConfig("SASRec", "ml-100k", config_dict={"rho": 0.2, "n_layers": 1, "load_col": None, "cl_weight": 0.1})
    assert capsys.readouterr().err == ""  # ours, RecBole's, dataset and model keys are known


def test_use_gpu_is_false_without_a_gpu():
    import torch

    assert SAMConfig("SASRec", "ml-100k")["use_gpu"] is (torch.cuda.is_available())


def test_help_lists_our_keys_and_the_models():
    done = subprocess.run([sys.executable, str(REPO / "run_recbole_sam.py"), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for text in ("--sam_interval=1", "--train_scheme=", "--resume_from", "--strict", "SASRec, CL4SRec, S3Rec", "GRU4Rec"):
        assert text in done.stdout


def test_tune_subcommand_is_dispatched_lazily(monkeypatch):
    seen = []
    package, module = types.ModuleType("recbole_sam.tune"), types.ModuleType("recbole_sam.tune.cli")
    module.main = lambda argv: seen.append(argv) or "tuned"
    package.cli = module
    monkeypatch.setitem(sys.modules, "recbole_sam.tune", package)
    monkeypatch.setitem(sys.modules, "recbole_sam.tune.cli", module)
    assert main(["tune", "--params", "p.hyper"]) == "tuned"
    assert seen == [["--params", "p.hyper"]]


def test_numpy_aliases_are_added_only_where_missing(monkeypatch):
    import importlib

    import numpy as np

    import recbole_sam.compat

    sentinel = object()
    monkeypatch.setattr(np, "complex_", sentinel, raising=False)
    if "float_" in np.__dict__:
        monkeypatch.delattr(np, "float_")
    importlib.reload(recbole_sam.compat)
    assert np.float_ is np.float64 and np.complex_ is sentinel


# The device: RecBole would set CUDA_VISIBLE_DEVICES to gpu_id ('0') and ignore use_gpu.


@pytest.mark.parametrize(
    "environment, overrides, gpu_id, after",
    [
        ("", {}, "", ""),  # GPUs hidden before the run stay hidden
        ("3", {}, "3", "3"),  # a scheduler's (or Ray's) GPU for this process is kept
        ("3", {"gpu_id": "1"}, "1", "1"),  # an explicit gpu_id still wins, as in RecBole
        (None, {}, "0", None),  # nothing set: RecBole's GPU 0, and the variable stays unset
        ("3", {"use_gpu": False}, "", "3"),  # the CPU for this run; the variable left as it was
        (None, {"use_gpu": False}, "", None),
    ],
)
def test_the_gpu_choice_of_the_environment_is_kept_and_use_gpu_false_means_the_cpu(
    environment, overrides, gpu_id, after, monkeypatch
):
    if environment is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", environment)
    config = SAMConfig("SASRec", "ml-100k", config_dict=dict(overrides))
    assert config["gpu_id"] == gpu_id
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == after
    if gpu_id == "":
        assert config["device"].type == "cpu" and config["use_gpu"] is False
