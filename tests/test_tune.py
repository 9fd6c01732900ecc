"""Ray Tune search: the params-file parser against RecBole's own, bad input, one trial's
reports (validation only, never the test split), ASHA on a constructed case, a whole search
through the command line, and resuming an interrupted search. Searches are 2-3 trials of
two tiny epochs on a local Ray with 2 CPUs."""

import json
import math
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG

from recbole_sam.errors import ConfigError
from recbole_sam.run import RECORD_KEYS, load_records
from recbole_sam.tune import cli, params, ray_compat, run_search, space, trial
from recbole_sam.tune.search import SearchInterrupted

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY_FLAGS = [f"--{key}={value}" for key, value in TINY_CONFIG.items()]
ALL_DISTRIBUTIONS = """\
rho loguniform -4.605,0
learning_rate loguniform -8.517,-5.809
hidden_dropout_prob uniform 0.1,0.5
hidden_size quniform 16,64,16
attn_dropout_prob choice [0.2, 0.3,0.5]
sam_variant choice ['sam','asam']
"""


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs, no GPU) for the module; ``run_search`` joins it and leaves it running."""
    ray_compat.connect(num_cpus=2)
    yield
    ray.shutdown()


def write(path, text):
    Path(path).write_text(text, encoding="utf-8")
    return str(path)


# The params file


def recording_hyperopt():
    """A stand-in ``hyperopt`` whose ``hp`` records what RecBole's parser asks of it."""
    hp = types.SimpleNamespace(
        choice=lambda name, values: ("choice", name, list(values)),
        uniform=lambda name, low, high: ("uniform", name, low, high),
        quniform=lambda name, low, high, q: ("quniform", name, low, high, q),
        loguniform=lambda name, low, high: ("loguniform", name, low, high),
    )
    return types.SimpleNamespace(hp=hp)


def test_params_file_reads_as_recbole_reads_it(monkeypatch):
    from recbole.trainer.hyper_tuning import HyperTuning

    path = write("all.hyper", ALL_DISTRIBUTIONS)
    monkeypatch.setitem(sys.modules, "hyperopt", recording_hyperopt())
    theirs = HyperTuning._build_space_from_file(path)
    ours = {p.name: (p.kind, p.name, list(p.values)) if p.kind == "choice" else (p.kind, p.name, *p.values)
            for p in params.read_params_file(path)}  # fmt: skip
    assert ours == theirs
    assert set(ours) == {"rho", "learning_rate", "hidden_dropout_prob", "hidden_size", "attn_dropout_prob", "sam_variant"}


def test_loguniform_bounds_are_natural_log_exponents_as_in_recbole():
    (rho,) = params.read_params_file(write("rho.hyper", "rho loguniform -4.605,0\n"))
    assert rho.bounds == pytest.approx((0.01, 1.0), rel=1e-3)  # e^-4.605, e^0: not 10^-4.605
    assert "0.01..1 (log-uniform)" in rho.describe()
    draws = space.tune_domain(rho).sample(size=4000, random_state=1)
    assert 0.01 * 0.999 <= min(draws) and max(draws) <= 1.0
    # log-uniform: half of the draws below e^(mid-exponent) = 0.1, a uniform draw would put 90% above.
    below = sum(draw < math.exp(-4.605 / 2) for draw in draws) / len(draws)
    assert 0.45 < below < 0.55


def test_quniform_of_whole_numbers_draws_integers_and_choice_becomes_a_grid_axis():
    hidden, choice = params.params_from_dict({"hidden_size": "quniform 16,64,16", "n_layers": ("choice", [1, 2])})
    draws = [space.tune_domain(hidden).sample(random_state=seed) for seed in range(30)]  # one draw a trial
    assert all(isinstance(draw, int) and draw in (16, 32, 48, 64) for draw in draws)
    assert space.param_space([choice], "grid") == {"n_layers": {"grid_search": [1, 2]}}


def test_a_value_that_is_not_a_literal_is_refused_and_never_run():
    path = write("evil.hyper", "rho loguniform -4.6,0\nhidden_size choice [__import__('os').system('touch pwned')]\n")
    with pytest.raises(ConfigError, match=r"evil.hyper line 2: choice needs a list of literals"):
        params.read_params_file(path)
    assert not Path("pwned").exists()


# Bad input: one line, exit code 2, nothing written


BAD_PARAMS = [
    ("rho gaussian 0,1\n", [], "error: params_file: bad.hyper line 1: unknown distribution 'gaussian' for rho (allowed: choice"),
    ("# rho\nrho loguniform\n", [], "error: params_file: bad.hyper line 2: expected 'name distribution values'"),
    ("rho uniform 1,0.5\n", [], "error: params_file: bad.hyper line 1: uniform needs low < high, got 1,0.5"),
    ("rho quniform 1,2,0\n", [], "error: params_file: bad.hyper line 1: quniform needs q > 0"),
    ("rho uniform a,b\n", [], "error: params_file: bad.hyper line 1: expected low,high (numbers), got 'a,b'"),
    ("rhoo uniform 0.1,1\n", [], "error: params_file: bad.hyper line 1: 'rhoo' is not a key that SASRec"),
    ("rho uniform -1,1\n", [], "error: params_file: bad.hyper line 1: rho = -1.0 would be refused: rho: must be a number > 0"),
    ("threads choice [1,2]\n", [], "error: params_file: bad.hyper line 1: threads is set by the search itself"),
    ("rho uniform 0.1,1\n", ["--search", "bayes"], "error: search: 'bayes' is not one of random, grid, optuna, hyperopt"),
    ("rho uniform 0.1,1\n", ["--search", "grid"], "error: search: grid needs at least one 'choice' line"),
    ("rho uniform 0.1,1\n", ["--scheduler", "hyperband"], "error: scheduler: 'hyperband' is not one of none, asha, median"),
    ("rho uniform 0.1,1\n", ["--num_samples", "0"], "error: num_samples: must be an integer >= 1, got 0"),
    ("rho uniform 0.1,1\n", ["--cpus_per_trial", "0"], "error: cpus_per_trial: must be an integer >= 1, got 0"),
    ("rho uniform 0.1,1\n", ["--cpus_per_trial", "64"], "error: cpus_per_trial: 64 is more than the 2 CPUs Ray has"),
    ("rho uniform 0.1,1\n", ["--address", "127.0.0.1:1"], "error: address: cannot reach a Ray cluster at 127.0.0.1:1"),
    ("rho uniform 0.1,1\n", ["--resume", "--name", "none"], "error: resume: no search in"),
    ("rho uniform 0.1,1\n", ["--model", "S3Rec"], "error: model: S3Rec is searched in its fine-tuning stage"),
    (None, [], "error: params_file: required"),
]  # fmt: skip


@pytest.mark.parametrize("text, argv, message", BAD_PARAMS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(local_ray, text, argv, message, capsys):
    argv = (["--params_file", write("bad.hyper", text)] if text else []) + argv + ["--storage_path", "res"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith(message), stderr
    assert not Path("res").exists()


def test_no_gpu_is_demanded_without_one_and_one_asked_for_is_refused(local_ray, capsys):
    if ray_compat.cluster_resources()[1]:
        pytest.skip("this machine has a GPU")
    from recbole_sam.tune.spec import SearchSpec, check_resources

    assert check_resources(SearchSpec("SASRec", "ml-100k", []), 2, 0) == 0.0
    assert check_resources(SearchSpec("SASRec", "ml-100k", []), 2, 1) == 1.0
    with pytest.raises(SystemExit):
        cli.main(["--params_file", write("r.hyper", "rho uniform 0.1,1\n"), "--gpus_per_trial", "0.5", "--storage_path", "res"])
    assert capsys.readouterr().err.startswith("error: gpus_per_trial: 0.5 is more than the 0 GPUs Ray has (allowed: 0")


def test_ray_address_from_the_environment_is_checked_like_address(monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--params_file", write("r.hyper", "rho uniform 0.1,1\n"), "--storage_path", "res"] + TINY_FLAGS)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: address: cannot reach a Ray cluster at 127.0.0.1:1")
    assert not Path("res").exists()


def test_a_missing_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--params_file", write("r.hyper", "rho uniform 0.1,1\n"), "--storage_path", "res"] + TINY_FLAGS)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith('pip install "recbole-sam[tune]"')
    assert not Path("res").exists()


def test_importing_the_tune_package_does_not_import_ray():
    code = "import recbole_sam.tune, recbole_sam.tune.cli, sys; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


# One trial, without Ray


def test_a_trial_reports_every_validation_and_never_evaluates_the_test_split(monkeypatch):
    import recbole_sam.run as run
    from recbole.trainer import Trainer

    splits, evaluated = {}, []
    prepare, evaluate = run.prepare, Trainer.evaluate

    def spy_prepare(config):
        trainer, train_data, valid_data, test_data = prepare(config)
        splits.update(valid=valid_data, test=test_data)
        return trainer, train_data, valid_data, test_data

    def spy_evaluate(self, eval_data, *args, **kwargs):
        evaluated.append("test" if eval_data is splits["test"] else "valid" if eval_data is splits["valid"] else "?")
        return evaluate(self, eval_data, *args, **kwargs)

    monkeypatch.setattr(run, "prepare", spy_prepare)
    monkeypatch.setattr(Trainer, "evaluate", spy_evaluate)
    reports = []
    base = {"model": "SASRec", "dataset": "ml-100k", "config_file_list": [], "config_dict": dict(TINY_CONFIG, epochs=3, stopping_step=5), "threads": 1}  # fmt: skip
    record = trial.train_trial({"rho": 0.05}, base, report=reports.append)

    # The trial's run record, in the one schema, in its folder; no test result, no last-epoch checkpoint.
    (stored,) = load_records("saved")
    assert list(stored) == list(RECORD_KEYS) and stored == record and stored["test_result"] == {}
    assert stored["settings"] == {"dataset": "ml-100k", "model": "SASRec", "trainer": "sam", "seed": TINY_CONFIG["seed"], "rho": 0.05}
    assert stored["history"]["best_epoch"] is not None and stored["files"]["log"].endswith(f"{stored['run_id']}.log")
    assert list(Path("saved").glob("*-last.pth")) == []
    assert evaluated == ["valid"] * 3  # one validation an epoch, the test split never
    assert [report["epoch"] for report in reports] == [0, 1, 2]
    for report in reports:
        assert report["valid_score"] == report["ndcg@10"]  # the objective is the validation NDCG@10
        assert {"train_loss", "hit@10", "sharpness", "ascent_norm", "best_valid_score", "best_epoch"} <= set(report)
        assert os.path.isfile(report["checkpoint"]) and report["checkpoint"].startswith(os.getcwd())
    best = max(reports, key=lambda report: report["valid_score"])
    assert reports[-1]["best_valid_score"] == best["valid_score"]


# ASHA on a constructed case


def constructed_trial(config):
    """Scores that grow with the epoch, ten times higher for the good trial."""
    for epoch in range(8):
        ray_compat.report({"valid_score": config["quality"] * (epoch + 1)})


def test_asha_stops_the_poor_trial_at_its_first_rung(local_ray, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    tuner = tune.Tuner(
        constructed_trial,
        param_space={"quality": tune.grid_search([1.0, 0.1])},
        tune_config=tune.TuneConfig(
            metric="valid_score", mode="max", scheduler=space.build_scheduler("asha", max_t=8), max_concurrent_trials=1
        ),
        run_config=ray_compat.run_config(str(tmp_path / "asha"), "asha"),
    )
    iterations = {result.config["quality"]: result.metrics["training_iteration"] for result in tuner.fit()}
    assert iterations == {1.0: 8, 0.1: 1}


# Whole searches


def read_csv_rows(path):
    import csv

    with open(path, encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_search_from_the_command_line_writes_the_table_and_a_best_yaml_that_trains(local_ray, capsys):
    hyper = write("sam.hyper", "rho loguniform -4.605,0\nhidden_dropout_prob choice [0.2,0.5]\n")
    argv = ["--params_file", hyper, "--num_samples", "2", "--scheduler", "asha", "--storage_path", "res", "--name", "s"]
    out = cli.main(argv + TINY_FLAGS)
    folder = Path("res/s").resolve()
    assert out["folder"] == str(folder)

    rows = read_csv_rows(folder / "trials.csv")
    assert len(rows) == 2 and {"rho", "hidden_dropout_prob", "best_valid_score", "valid_ndcg@10", "best_epoch", "validations", "ended_by", "seconds"} <= set(rows[0])  # fmt: skip
    assert float(rows[0]["best_valid_score"]) >= float(rows[1]["best_valid_score"])  # best first
    assert all(0.01 * 0.999 <= float(row["rho"]) <= 1 for row in rows)
    assert (folder / "trials.md").read_text().count("\n| ") == 3  # header + 2 trials

    # What Tune saw at every epoch was the validation metric.
    for trial_dir in folder.glob("train_*"):
        progress = read_csv_rows(trial_dir / "progress.csv")
        assert progress and all(row["valid_score"] == row["ndcg@10"] for row in progress)
        assert not (trial_dir / "error.txt").exists()

    best = json.loads((folder / "best.json").read_text())
    assert set(best["test_result"]) == {"hit@10", "ndcg@10"} and best["params"]["rho"] == out["best"]["params"]["rho"]
    assert best["best_valid_result"]["ndcg@10"] == pytest.approx(float(rows[0]["valid_ndcg@10"]))
    assert set(RECORD_KEYS) <= set(best) and best["settings"]["rho"] == best["params"]["rho"]  # the winner's record
    assert list(folder.glob("train_*/saved/*-last.pth")) == []  # no trial keeps its last-epoch checkpoint
    logs = list(folder.glob("train_*/log/SASRec/*.log"))
    assert len(logs) == 2 and "None.log" not in {log.name for log in logs}  # each trial's log by its run id
    for png in ("curves.png", "params.png"):
        assert (folder / png).read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert "[1/2]" in printed and "[2/2]" in printed and "test result:" in printed
    assert "General Hyper Parameters" not in printed  # trials are quiet: RecBole's dump goes to their logs

    stored = yaml.safe_load((folder / "best.yaml").read_text())
    assert stored["rho"] == best["params"]["rho"] and stored["model"] == "SASRec"
    from recbole_sam.cli import main as train_main

    # python run_recbole_sam.py --config_files=best.yaml: its model and dataset are no unknown keys, even --strict
    result = train_main([f"--config_files={folder / 'best.yaml'}", "--strict"])
    assert result["history"]["epochs"] == TINY_CONFIG["epochs"] and set(result["test_result"]) == {"hit@10", "ndcg@10"}


class InterruptAfterFirstTrial(tune.Callback):
    """Ctrl-C as a user would press it, once, after the first trial ends (the marker keeps the
    restored copy of this callback from pressing it again)."""

    def __init__(self, marker):
        self.marker = marker

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_after_an_interruption_reruns_no_finished_trial(local_ray, tmp_path):
    options = dict(space={"rho": "loguniform -4.605,0"}, config_dict=dict(TINY_CONFIG), storage_path="res", name="r")
    marker = str(tmp_path / "pressed")
    with pytest.raises(SearchInterrupted, match="--resume --storage_path .*res --name r"):
        run_search("SASRec", "ml-100k", num_samples=3, max_concurrent=1, callbacks=[InterruptAfterFirstTrial(marker)], **options)
    finished = [d for d in Path("res/r").glob("train_*") if (d / "result.json").stat().st_size and
                json.loads((d / "result.json").read_text().splitlines()[-1]).get("done")]  # fmt: skip
    assert len(finished) == 1 and not Path("res/r/trials.csv").exists()
    before = (finished[0] / "result.json").read_text()

    out = run_search(storage_path="res", name="r", resume=True)
    assert len(out["trials"]) == 3 and all(row["validations"] == 2 for row in out["trials"])
    assert (finished[0] / "result.json").read_text() == before  # not trained again: no result appended


def test_a_self_supervised_model_is_searched_like_sasrec(local_ray):
    # CL4SRec's trials go through the same trainers, records and table as SASRec's.
    hyper = write("cl.hyper", "rho loguniform -4.605,0\n")
    out = cli.main(["--params_file", hyper, "--num_samples", "1", "--storage_path", "res", "--name", "cl", "--model", "CL4SRec"] + TINY_FLAGS)
    folder = Path(out["folder"])
    (row,) = read_csv_rows(folder / "trials.csv")
    assert 0.01 * 0.999 <= float(row["rho"]) <= 1 and not list(folder.glob("train_*/error.txt"))
    best = json.loads((folder / "best.json").read_text())
    assert best["settings"]["model"] == "CL4SRec" and set(best["test_result"]) == {"hit@10", "ndcg@10"}
