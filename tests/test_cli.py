"""The command line and the configuration: the happy path, RecBole's traps, and every bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import recbole_sam.quick_start
from recbole_sam.cli import main
from recbole_sam.literals import parse_overrides
from recbole_sam.run import RECORD_KEYS, load_records
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def cli_args(config):
    return [f"--{key}={value}" for key, value in config.items()]


def test_cli_happy_path_prints_valid_and_test_metrics(tiny_config):
    command = [sys.executable, str(REPO / "run_recbole_sam.py"), "--model", "SASRec", "--dataset", "ml-100k"]
    command += ["--trainer", "sam", "--rho", "0.1", *cli_args(dict(tiny_config, epochs=1, state="INFO"))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best valid: {'hit@10':" in done.stdout
    assert "test result: {'hit@10':" in done.stdout
    assert len(list(Path("saved").glob("SASRec-*.pth"))) == 1
    assert [name for name in os.listdir("saved") if "partial" in name] == []
    # Quiet: the config dump goes to the log file only, and no library FutureWarnings.
    assert "Hyper Parameters" not in done.stderr and "FutureWarning" not in done.stderr
    # One run id names the log, the tensorboard folder, the checkpoint and result.json.
    run_id = Path(done.stdout.split("checkpoint: ")[1].strip()).stem
    assert "Hyper Parameters" in (Path("log") / "SASRec" / f"{run_id}.log").read_text()
    assert os.listdir("log_tensorboard") == [run_id]
    assert sorted(os.listdir("saved")) == [f"{run_id}.pth", f"{run_id}.result.json"]
    (result,) = load_records("saved")  # the run's record, in the one schema
    assert list(result) == list(RECORD_KEYS) and result["run_id"] == run_id
    assert result["history"]["best_epoch"] == 0 and set(result["test_result"]) == {"hit@10", "ndcg@10"}
    assert result["settings"] == {"dataset": "ml-100k", "model": "SASRec", "trainer": "sam", "seed": tiny_config["seed"]}
    assert result["config"]["rho"] == 0.1 and result["command"].startswith("python run_recbole_sam.py --model SASRec")
    assert result["files"]["log"] == str((Path("log") / "SASRec" / f"{run_id}.log").resolve())
    assert "model: unknown key" not in done.stderr and "dataset: unknown key" not in done.stderr


def test_model_and_dataset_are_known_keys_even_when_strict(capsys):
    from recbole_sam.checks import check_known_keys

    check_known_keys({"model": "S3Rec", "dataset": "ml-100k", "strict": True})  # config files and config_dict may set them
    assert capsys.readouterr().err == ""


def test_cli_bad_input_is_one_line_without_traceback(tiny_config):
    command = [sys.executable, str(REPO / "run_recbole_sam.py"), "--rho", "-1", *cli_args(tiny_config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: rho: must be a number > 0, got -1"]
    assert not os.path.exists("saved") or os.listdir("saved") == []


def write(name, text):
    Path(name).write_text(text, encoding="utf-8")
    return name


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model", "NoSuchModel"], ["model: 'NoSuchModel'", "SASRec", "GRU4Rec"]),
        (["--trainer", "fancy"], ["trainer: 'fancy' is not one of sam, plain"]),
        (["--rho", "0"], ["rho: must be a number > 0, got 0"]),
        (["--rho", "abc"], ["rho: must be a number > 0, got 'abc'"]),
        (["--sam_variant", "gsam"], ["sam_variant: 'gsam' is not one of sam, asam, looksam"]),
        (["--sam_interval=0"], ["sam_interval: must be an integer >= 1, got 0"]),
        (["--learner=sparse_adam"], ["learner: 'sparse_adam'", "adam, adamw, sgd, adagrad, rmsprop"]),
        (["--loss_type=MSE"], ["loss_type: 'MSE' is not one of CE, BPR, BCE"]),
        (["--dataset", "no-such-data"], ["dataset: no atomic file", "no-such-data.inter"]),
        (["--config_files", "missing.yaml"], ["config_files: cannot read 'missing.yaml'"]),
        (["--config_files", "BAD"], ["config_files: 'bad.yaml' is not valid YAML"]),
        (["--config_files", "LIST"], ["config_files: 'list.yaml' must hold 'key: value' lines"]),
        (["stray"], ["command line: unexpected argument 'stray'"]),
        (["--epochs"], ["command line: --epochs needs a value"]),
    ],
)
def test_each_bad_input_names_the_key_and_allowed_values(argv, expected, tiny_config, capsys):
    files = {"BAD": write("bad.yaml", "rho: [0.1\n"), "LIST": write("list.yaml", "- rho\n- 0.1\n")}
    argv = [files.get(arg, arg) for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + cli_args(tiny_config))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0]
    assert not os.path.exists("saved") or os.listdir("saved") == []


def test_cli_passes_config_files_in_order_and_overrides(monkeypatch):
    seen = {}

    def fake_run(model, dataset, config_file_list=None, config_dict=None, saved=True, resume_from=None, verbose=False,
                 command=""):  # fmt: skip
        seen.update(model=model, dataset=dataset, files=config_file_list, overrides=config_dict, saved=saved)
        return {"best_valid_result": {}, "test_result": {}}

    monkeypatch.setattr(recbole_sam.quick_start, "run_recbole_sam", fake_run)
    main(["--trainer", "plain", "--epochs=3", "--train_batch_size", "512", "--config_files=a.yaml b.yaml"])
    assert seen == {
        "model": "SASRec",
        "dataset": "ml-100k",
        "files": ["a.yaml", "b.yaml"],
        "overrides": {"epochs": "3", "train_batch_size": "512", "trainer": "plain"},
        "saved": True,
    }


def test_later_config_files_win_and_config_dict_wins_over_files():
    write("a.yaml", "rho: 0.5\nsam_variant: asam\nepochs: 4\n")
    write("b.yaml", "rho: 2.0\n")
    config = SAMConfig("SASRec", "ml-100k", config_file_list=["a.yaml", "b.yaml"], config_dict={"epochs": "7"})
    assert (config["rho"], config["sam_variant"], config["epochs"]) == (2.0, "asam", 7)


def test_defaults_avoid_recboles_traps(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=99", "--tb=short"])  # never read
    config = SAMConfig("SASRec", "ml-100k")
    assert config["epochs"] != 99 and "tb" not in config
    assert config["valid_metric"] == "NDCG@10" and config["metrics"] == ["Hit", "NDCG"]
    assert (config["trainer"], config["sam_variant"], config["loss_type"]) == ("sam", "sam", "BCE")
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    # RecBole refuses CE with its default negative sampling; ours samples only when the loss needs it.
    assert SAMConfig("SASRec", "ml-100k", config_dict={"loss_type": "CE"})["train_neg_sample_args"]["distribution"] == "none"
    assert not torch.is_anomaly_enabled()


def test_parse_overrides_rejects_what_it_cannot_read():
    assert parse_overrides(["--a=1", "--b", "x y", "--c=d=e"]) == {"a": "1", "b": "x y", "c": "d=e"}
    with pytest.raises(ConfigError):
        parse_overrides(["--"])


@pytest.mark.parametrize("loss_type", ["CE", "BPR", "BCE"])
def test_every_offered_loss_trains_with_the_defaults(loss_type, tiny_config):
    result = recbole_sam.quick_start.run_recbole_sam(
        "SASRec", "ml-100k", config_dict=dict(tiny_config, epochs=1, loss_type=loss_type)
    )
    assert set(result["test_result"]) == {"hit@10", "ndcg@10"}
    assert os.path.isfile(result["checkpoint"])


def test_importing_the_package_does_not_import_ray_or_switch_on_anomaly_detection():
    # recbole.quick_start imports Ray at module level; RecBole's SINE turns anomaly detection on.
    code = (
        "import sys, torch, recbole_sam.quick_start, recbole_sam.experiments.runner, recbole_sam.analysis; "
        "import recbole.model.sequential_recommender.sine; "
        "print('ray' in sys.modules, torch.is_anomaly_enabled())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]


def test_a_config_files_model_and_dataset_win_over_the_defaults(tmp_path, monkeypatch):
    import recbole_sam.quick_start
    from recbole_sam.cli import main

    seen = {}

    def fake_run(model, dataset, **kwargs):
        seen.update(model=model, dataset=dataset)
        return {"best_valid_result": {}, "test_result": {}}

    monkeypatch.setattr(recbole_sam.quick_start, "run_recbole_sam", fake_run)
    best = tmp_path / "best.yaml"
    best.write_text("model: CL4SRec\ndataset: ml-100k\nrho: 0.3\n")
    main([f"--config_files={best}"])
    assert seen == {"model": None, "dataset": None}  # SAMConfig reads them from the file
    main([])
    assert seen == {"model": "SASRec", "dataset": "ml-100k"}  # the defaults
    main([f"--config_files={best}", "--model", "SASRec"])
    assert seen["model"] == "SASRec"  # the command line wins over the file
