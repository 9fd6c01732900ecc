"""What a newcomer hit on a fresh clone (issue 18), one test per finding: plausible input that
crashed is refused in one line before anything is written, quiet acceptances are said, false
alarms are gone, and the command line behaves in files, pipes and under SIGTERM.

The findings fixed and tested elsewhere: model/dataset are known keys (test_cli.py, and
test_tune.py's best.yaml trained with --strict), grid reruns say what they skipped, --set
values are literals (test_experiments.py), Ray workers start at the caller's niceness
(test_grid_workers.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recbole_sam.cli import build_parser, main
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError, exit_on_user_error
from recbole_sam.registry import get_model

REPO = Path(__file__).resolve().parent.parent


def run_cli(argv, tiny_config, capsys):
    overrides = [f"--{key}={value}" for key, value in tiny_config.items() if f"--{key}=" not in " ".join(argv)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + overrides)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.strip().splitlines()


# Model names


def test_model_names_match_in_any_letter_case():
    from recbole_sam.model.sasrec import SASRec

    assert get_model("sasrec") is SASRec and get_model("Sasrec") is SASRec
    assert get_model("bpr").__name__ == "BPR" and get_model("gru4rec").__name__ == "GRU4Rec"
    assert SAMConfig("sasrec", "ml-100k")["model"] == "SASRec"  # the log, checkpoints and records say SASRec


def test_a_misspelt_model_is_one_line_naming_the_right_spelling():
    with pytest.raises(ConfigError, match=r"^model: 'SASRek' is not a recbole-sam or RecBole model; did you mean SASRec\?"):
        get_model("SASRek")


def test_help_lists_every_model_recboles_trainer_trains():
    text = build_parser().format_help()
    for family in ("sequential: SASRec, CL4SRec, S3Rec", "general: BPR", "context-aware: AFM"):
        assert family in text
    assert "LightGCN" in text and "KGAT" not in text  # KGAT needs its own trainer, refused here


# Values RecBole would crash on, refused before anything is written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--topk=[0]"], "topk: must be an integer >= 1 or a list of them, e.g. [10, 20], got [0]"),
        (["--metrics=[Hit, Foo]"], "metrics: 'Foo' is not a RecBole metric (any letter case); allowed: "),
        (["--metrics=[]"], "metrics: name at least one; allowed: "),
        (["--seed=abc"], "seed: must be an integer in [0, 2**32), got 'abc'"),
        (["--seed=-1"], "seed: must be an integer in [0, 2**32), got -1"),
        (["--n_heads=2", "--hidden_size=15"], "hidden_size: must be a multiple of n_heads (2), got 15"),
        (["--hidden_dropout_prob=1.5"], "hidden_dropout_prob: a dropout rate must be a number in [0, 1), got 1.5"),
        (["--attn_dropout_prob=-0.1"], "attn_dropout_prob: a dropout rate must be a number in [0, 1), got -0.1"),
        (["--n_heads=0"], "n_heads: must be an integer >= 1, got 0"),
        (["--n_layers=0"], "n_layers: must be an integer >= 1, got 0"),
        (["--eval_step=-1"], "eval_step: must be an integer >= 0 (0: no validation), got -1"),
        (["--train_stage=finetune"], "train_stage: only S3Rec has stages (pretrain, finetune); SASRec trains in one"),
    ],
)
def test_values_recbole_would_crash_on_are_one_line_rc_2_and_nothing_written(argv, message, tiny_config, capsys):
    code, _, err = run_cli(argv, tiny_config, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert os.listdir(".") == []  # no log/, saved/ or log_tensorboard/


def test_heads_constrain_hidden_size_only_for_models_with_attention():
    # A paper file sets n_heads for every model; GRU4Rec has no attention, so any size is fine.
    settings = {"n_heads": 2, "hidden_size": 65, "embedding_size": 65}
    assert SAMConfig("GRU4Rec", "ml-100k", config_dict=settings)["hidden_size"] == 65
    with pytest.raises(ConfigError, match="hidden_size: must be a multiple of n_heads"):
        SAMConfig("SASRec", "ml-100k", config_dict=settings)


def test_the_metric_names_listed_are_recboles(tiny_config, capsys):
    _, _, err = run_cli(["--metrics=Foo"], tiny_config, capsys)
    assert "Hit" in err[0] and "NDCG" in err[0] and "MRR" in err[0]
    assert SAMConfig("SASRec", "ml-100k", config_dict={"metrics": ["hit", "MRR"], "valid_metric": "MRR@10"})  # any case


def test_a_gpu_id_without_that_gpu_is_a_one_line_note(monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():  # CUDA started in this process ignores CUDA_VISIBLE_DEVICES set later
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test: gpu_id pins the process
    from recbole_sam import config as config_module

    monkeypatch.setattr(config_module, "_NOTED", set())
    config = SAMConfig("SASRec", "ml-100k", config_dict={"gpu_id": 7})
    SAMConfig("SASRec", "ml-100k", config_dict={"gpu_id": 7})  # a second config of the same run: said once
    assert config["device"].type == "cpu"
    assert capsys.readouterr().err.splitlines() == ["note: gpu_id: no GPU '7' is visible here; training on the CPU"]


# What a run says, in a file or a pipe


@pytest.fixture(scope="module")
def redirected_run(tmp_path_factory):
    """A tiny run without validation, progress bars asked for, its output going to pipes."""
    from conftest import TINY_CONFIG

    settings = dict(TINY_CONFIG, epochs=1, eval_step=0, show_progress=True, state="INFO")
    command = [sys.executable, str(REPO / "run_recbole_sam.py"), *[f"--{key}={value}" for key, value in settings.items()]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path_factory.mktemp("run"))
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_no_validation_is_said_plainly(redirected_run):
    lines = redirected_run.stdout.splitlines()
    assert lines[0].startswith("no validation: no epoch was validated (eval_step: 0)")
    assert not any(line.startswith("best valid") for line in lines) and lines[1].startswith("test result: {")


def test_no_colour_codes_or_progress_bars_in_a_pipe(redirected_run):
    output = redirected_run.stdout + redirected_run.stderr
    assert "\x1b[" not in output and "\r" not in output and "it/s]" not in output
    assert "epoch 0 training" in redirected_run.stderr  # the log lines are there, plain


# Signals


def test_sigterm_exits_143_and_ctrl_c_130(capsys):
    # Python's own Ctrl-C handler, even where pytest was started in the background (a shell then
    # starts it with SIGINT ignored, and Python keeps that).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for send, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGTERM, 143)):
            with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
                os.kill(os.getpid(), send)
                time.sleep(5)  # Python runs the handler at once; the sleep is only a fallback
            assert exit_info.value.code == code
    finally:
        signal.signal(signal.SIGINT, before)
    assert capsys.readouterr().err.splitlines() == ["interrupted"] * 3


# Tests


def test_the_session_works_in_a_temporary_folder(session_folder):
    assert not session_folder.resolve().is_relative_to(REPO)  # session fixtures (a local Ray) write there
    assert not Path.cwd().resolve().is_relative_to(REPO)


# Tune (trials named by their run id and without -last.pth, and an unreachable --address: test_tune.py)


def test_loguniform_bounds_that_look_like_values_are_refused_with_the_exponents_meant(capsys):
    pytest.importorskip("ray")
    from recbole_sam.tune import cli as tune_cli

    Path("lr.hyper").write_text("learning_rate loguniform 0.0001,0.01\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        tune_cli.main(["--params_file", "lr.hyper", "--storage_path", "res"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err == [
        "error: params_file: lr.hyper line 1: loguniform takes natural-log exponents, and 0.0001,0.01 would search "
        "1..1.01; for learning_rate in 0.0001..0.01 write: learning_rate loguniform -9.21,-4.605"
    ]
    assert os.listdir(".") == ["lr.hyper"]
    from recbole_sam.tune.params import params_from_dict

    assert params_from_dict({"rho": "loguniform -4.605,0"})[0].bounds[1] == 1.0  # exponents still read as before


@pytest.mark.parametrize("exponents", ["-4.605,0", "-8.517,-5.809", "-7,-6.5"])
def test_params_png_tick_labels_do_not_overlap(exponents):
    import math
    import random

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from recbole_sam.tune import plots
    from recbole_sam.tune.params import params_from_dict

    (param,) = params_from_dict({"learning_rate": f"loguniform {exponents}"})
    draw = random.Random(1)
    rows = [{"learning_rate": math.exp(draw.uniform(*param.values)), "best_valid_score": draw.random()} for _ in range(10)]
    fig = plots.params_figure(rows, [param])
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    labels = [label for label in ax.get_xticklabels(which="both") if label.get_text() and low <= label.get_position()[0] <= high]
    boxes = [label.get_window_extent() for label in labels]
    assert len(labels) >= 2, [label.get_text() for label in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), [label.get_text() for label in labels]


def test_a_stream_without_isatty_counts_as_no_terminal():
    from recbole_sam.run import on_terminal

    assert on_terminal(object()) is False  # Ray's workers replace stderr with such a stand-in


def test_a_search_names_its_model_as_the_class_does():
    pytest.importorskip("ray")
    from recbole_sam.tune.search import new_spec

    spec = new_spec("sasrec", "ml-100k", None, {"rho": "loguniform -4.605,0"}, {}, None, 1, "res", None, search="random")
    assert spec.model == "SASRec" and spec.name.startswith("SASRec_ml-100k_")
