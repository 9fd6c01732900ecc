"""The experiment grids: expansion, resumable records, tables against hand-computed numbers,
figures, the command line's errors, all with a fake run; then one real ``table`` run."""

import csv
import io
import itertools
import json
import math
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
from conftest import TINY_CONFIG

from recbole_sam.errors import ConfigError
from recbole_sam.experiments import cli, report, runner
from recbole_sam.experiments.plots import plot_rho, plot_sparsity
from recbole_sam.run import RECORD_KEYS, load_records

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BASE_HIT = {"SASRec": 0.05, "S3Rec": 0.055, "CL4SRec": 0.06}


def fake_hit(model, config):
    """Deterministic metrics from the settings: SAM adds 10%, fewer data scale down, seeds shift."""
    sam = 1.1 if config["trainer"] == "sam" else 1.0
    return BASE_HIT[model] * sam * config.get("train_fraction", 1.0) + 0.001 * config["seed"]


class FakeRun:
    """Stands in for ``run_recbole_sam``: records its calls, writes a checkpoint where it is
    told to, and raises ``fail_with`` on call number ``fail_at``."""

    def __init__(self, fail_at=None, fail_with=KeyboardInterrupt):
        self.calls, self.fail_at, self.fail_with = [], fail_at, fail_with

    def __call__(self, model, dataset, config_file_list, config_dict):
        self.calls.append(dict(config_dict, model=model, dataset=dataset, config_files=config_file_list))
        checkpoint = Path(config_dict["checkpoint_dir"]) / f"{model}-fake.pth"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"weights")
        if len(self.calls) == self.fail_at:
            raise self.fail_with("stop")
        hit = fake_hit(model, config_dict)
        return {
            "test_result": OrderedDict([("hit@10", hit), ("ndcg@10", hit / 2)]),
            "best_valid_result": OrderedDict([("hit@10", hit + 0.01), ("ndcg@10", hit / 2 + 0.01)]),
            "checkpoint": str(checkpoint),
        }


def record(model, trainer, seed, hit, ndcg, dataset="ml-100k", **overrides):
    settings = dict(dataset=dataset, model=model, trainer=trainer, **overrides, seed=seed)
    run_id = runner.Run(dataset, model, trainer, seed, tuple(sorted(overrides.items()))).run_id
    return {
        "run_id": run_id,
        "settings": settings,
        "test_result": {"hit@10": hit, "ndcg@10": ndcg},
        "best_valid_result": {"hit@10": hit, "ndcg@10": ndcg},
        "seconds": 1.0,
    }


def by_name(groups, name, **overrides):
    (group,) = [g for g in groups if g["name"] == name and overrides.items() <= g["overrides"].items()]
    return group


def partial_files(folder):
    return [path for path in Path(folder).rglob("*") if "partial" in path.name]


# Grids


def test_table_grid_is_every_model_trainer_dataset_and_seed():
    runs = runner.expand_grid(runner.table_arms(["SASRec", "CL4SRec"], ["plain", "sam"]), ["ml-100k", "Beauty"], [1, 2])
    assert len(runs) == 16 and len({run.run_id for run in runs}) == 16
    assert runs[0].run_id == "ml-100k_SASRec_plain_seed=1"
    assert runs[1].settings == {"dataset": "ml-100k", "model": "SASRec", "trainer": "sam", "seed": 1}
    assert [run.seed for run in runs] == [1] * 8 + [2] * 8  # whole seeds first
    assert {(run.model, run.trainer, run.dataset) for run in runs} == {
        (m, t, d) for m in ("SASRec", "CL4SRec") for t in ("plain", "sam") for d in ("ml-100k", "Beauty")
    }


def test_rho_grid_is_samrec_at_each_rho_plus_plain_sasrec():
    runs = runner.expand_grid(runner.rho_arms([0.01, 10]), ["ml-100k"], [3])
    assert [run.run_id for run in runs] == [
        "ml-100k_SASRec_plain_seed=3",
        "ml-100k_SASRec_sam_rho=0.01_seed=3",
        "ml-100k_SASRec_sam_rho=10.0_seed=3",
    ]
    assert runs[2].settings["rho"] == 10.0 and "rho" not in runs[0].settings


def test_sparsity_grid_is_sasrec_samrec_cl4srec_at_each_fraction():
    runs = runner.expand_grid(runner.sparsity_arms([0.6, 1.0]), ["ml-100k"], [1])
    assert [(run.model, run.trainer, run.settings["train_fraction"]) for run in runs] == [
        ("SASRec", "plain", 0.6), ("SASRec", "sam", 0.6), ("CL4SRec", "plain", 0.6),
        ("SASRec", "plain", 1.0), ("SASRec", "sam", 1.0), ("CL4SRec", "plain", 1.0),
    ]  # fmt: skip


def test_repeated_runs_are_dropped_and_clashing_names_refused():
    assert len(runner.expand_grid(runner.table_arms(["SASRec"], ["sam"]), ["ml-100k", "ml-100k"], [1, 1])) == 1
    with pytest.raises(ConfigError, match="share the file name"):
        runner.expand_grid(runner.table_arms(["SASRec"], ["sam"]), ["a/b", "a-b"], [1])


# Records and resuming


def test_each_run_writes_one_record_and_a_second_invocation_runs_nothing(tmp_path, capsys):
    runs = runner.expand_grid(runner.rho_arms([0.5]), ["ml-100k"], [1, 2])
    fake = FakeRun()
    common = {"epochs": "3", "state": "WARNING"}
    records = runner.run_grid(runs, "exp", common, ["a.yaml"], command="python run_experiments.py rho", run_fn=fake)

    assert len(fake.calls) == 4
    call = fake.calls[1]
    assert [call[key] for key in ("model", "dataset", "trainer", "rho", "seed")] == ["SASRec", "ml-100k", "sam", 0.5, 1]
    assert call["epochs"] == "3" and call["config_files"] == ["a.yaml"]
    assert Path(call["checkpoint_dir"]) == Path("exp/saved/ml-100k_SASRec_sam_rho=0.5_seed=1")
    assert not Path("exp/saved").exists()  # checkpoints deleted, and their folder

    files = sorted(Path("exp/runs").iterdir())
    assert [path.name for path in files] == sorted(f"{run.run_id}.json" for run in runs)
    stored = json.loads(Path("exp/runs/ml-100k_SASRec_sam_rho=0.5_seed=1.json").read_text())
    assert stored == records[1]
    assert stored["settings"] == {"dataset": "ml-100k", "model": "SASRec", "trainer": "sam", "rho": 0.5, "seed": 1}
    assert stored["test_result"] == {"hit@10": pytest.approx(0.056), "ndcg@10": pytest.approx(0.028)}
    assert stored["best_valid_result"]["hit@10"] == pytest.approx(0.066)
    assert stored["command"] == "python run_experiments.py rho"
    assert stored["config"] == common and stored["config_files"] == ["a.yaml"]
    assert stored["seconds"] >= 0 and stored["files"]["checkpoint"] is None
    assert {"cpu_count", "torch", "threads"} <= set(stored["machine"])
    assert list(stored) == list(RECORD_KEYS) and stored["config_digests"] == {"a.yaml": None}  # the one schema

    capsys.readouterr()
    again = FakeRun()
    assert runner.run_grid(runs, "exp", dict(common, state="INFO"), ["a.yaml"], run_fn=again) == records
    assert again.calls == []
    assert "exp: 4 of 4 runs have a record already (skipped); 0 to run" in capsys.readouterr().out
    assert load_records("exp/runs") == sorted(records, key=lambda r: r["run_id"])
    assert load_records("exp/runs", [runs[3].run_id]) == [records[3]]


def test_keep_checkpoints_keeps_and_lists_them():
    runs = runner.expand_grid(runner.table_arms(["SASRec"], ["sam"]), ["ml-100k"], [1])
    (stored,) = runner.run_grid(runs, "exp", run_fn=FakeRun(), keep_checkpoints=True)
    assert stored["files"]["checkpoint"] == str(Path("exp/saved/ml-100k_SASRec_sam_seed=1/SASRec-fake.pth"))
    assert Path(stored["files"]["checkpoint"]).read_bytes() == b"weights"


def test_an_interrupted_grid_keeps_finished_records_only_and_resumes():
    runs = runner.expand_grid(runner.table_arms(["SASRec", "CL4SRec"], ["plain", "sam"]), ["ml-100k"], [1])
    with pytest.raises(KeyboardInterrupt):
        runner.run_grid(runs, "exp", run_fn=FakeRun(fail_at=3))
    assert sorted(path.name for path in Path("exp/runs").iterdir()) == [f"{run.run_id}.json" for run in runs[:2]]
    assert partial_files("exp") == []
    # The interrupted run keeps its checkpoints (the next call resumes from them); finished runs' went.
    assert [path.name for path in Path("exp/saved").iterdir()] == [runs[2].run_id]

    rest = FakeRun()
    records = runner.run_grid(runs, "exp", run_fn=rest)
    assert [(call["model"], call["trainer"]) for call in rest.calls] == [(run.model, run.trainer) for run in runs[2:]]
    assert [r["run_id"] for r in records] == [run.run_id for run in runs]
    assert len(list(Path("exp/runs").glob("*.json"))) == 4
    assert not Path("exp/saved").exists()


def test_records_made_with_other_options_are_not_mixed_in():
    runs = runner.expand_grid(runner.table_arms(["SASRec"], ["plain"]), ["ml-100k"], [1])
    runner.run_grid(runs, "exp", {"epochs": "3"}, run_fn=FakeRun())
    with pytest.raises(ConfigError, match=r"other options \(epochs: '3' there, '50' now\)"):
        runner.run_grid(runs, "exp", {"epochs": "50"}, run_fn=FakeRun())
    with pytest.raises(ConfigError, match=r"other options \(config_files: \[\] there, \['other.yaml'\] now\)"):
        runner.run_grid(runs, "exp", {"epochs": "3"}, ["other.yaml"], run_fn=FakeRun())


# Tables

HAND_RECORDS = [
    record("SASRec", "plain", 1, 0.10, 0.05),
    record("SASRec", "plain", 2, 0.12, 0.05),
    record("SASRec", "plain", 3, 0.14, 0.08),
    record("SASRec", "sam", 1, 0.13, 0.06),
    record("SASRec", "sam", 2, 0.15, 0.06),
    record("SASRec", "sam", 3, 0.17, 0.09),
    record("S3Rec", "plain", 1, 0.20, 0.10),
    record("S3Rec", "sam", 1, 0.19, 0.11),
    record("CL4SRec", "plain", 1, 0.0, 0.0),
    record("CL4SRec", "sam", 1, 0.01, 0.01),
]


def test_mean_std_over_seeds_and_improvement_over_the_backbone():
    groups = report.summarize(HAND_RECORDS)
    assert [g["name"] for g in groups] == ["SASRec", "SAMRec", "S3Rec", "S3Rec+SAM", "CL4SRec", "CL4SRec+SAM"]
    sasrec, samrec = by_name(groups, "SASRec"), by_name(groups, "SAMRec")
    assert sasrec["n"] == 3 and samrec["n"] == 3
    assert sasrec["mean"]["hit@10"] == pytest.approx(0.12) and sasrec["std"]["hit@10"] == pytest.approx(0.02)
    # ndcg 0.05, 0.05, 0.08: mean 0.06, sample variance (1e-4 + 1e-4 + 4e-4) / 2
    assert sasrec["mean"]["ndcg@10"] == pytest.approx(0.06)
    assert sasrec["std"]["ndcg@10"] == pytest.approx(math.sqrt(3e-4))
    assert samrec["backbone"] == "SASRec"
    assert samrec["improvement"]["hit@10"] == pytest.approx(25.0)  # 0.15 vs 0.12
    assert samrec["improvement"]["ndcg@10"] == pytest.approx(100 * (0.07 - 0.06) / 0.06)
    s3rec_sam = by_name(groups, "S3Rec+SAM")
    assert s3rec_sam["std"]["hit@10"] is None  # one seed
    assert s3rec_sam["improvement"] == {"hit@10": pytest.approx(-5.0), "ndcg@10": pytest.approx(10.0)}
    assert by_name(groups, "CL4SRec+SAM")["improvement"]["hit@10"] is None  # backbone scored 0
    assert "improvement" not in sasrec


def test_sweeps_compare_with_the_plain_run_of_the_same_settings():
    records = [
        record("SASRec", "plain", 1, 0.10, 0.05),
        record("SASRec", "sam", 1, 0.11, 0.05, rho=0.01),
        record("SASRec", "sam", 1, 0.12, 0.05, rho=1.0),
        record("SASRec", "plain", 1, 0.08, 0.04, train_fraction=0.6),
        record("SASRec", "sam", 1, 0.10, 0.05, train_fraction=0.6),
        record("SASRec", "sam", 1, 0.13, 0.05, train_fraction=1.0),
        record("SASRec", "plain", 1, 0.10, 0.05, dataset="Beauty"),
    ]
    groups = report.summarize(records)
    assert by_name(groups, "SAMRec", rho=1.0)["improvement"]["hit@10"] == pytest.approx(20.0)
    assert by_name(groups, "SAMRec", rho=0.01)["improvement"]["hit@10"] == pytest.approx(10.0)
    assert by_name(groups, "SAMRec", train_fraction=0.6)["improvement"]["hit@10"] == pytest.approx(25.0)  # not vs 0.10
    # No plain run at fraction 1.0: the closest is the one without a fraction, on ml-100k (not Beauty).
    assert by_name(groups, "SAMRec", train_fraction=1.0)["improvement"]["hit@10"] == pytest.approx(30.0)


def test_csv_has_one_row_per_run_with_settings_and_metrics():
    records = HAND_RECORDS[:2] + [record("SASRec", "sam", 1, 0.11, 0.05, rho=0.1)]
    rows = list(csv.DictReader(io.StringIO(report.to_csv(report.to_rows(records)))))
    assert list(rows[0]) == [
        "run_id", "name", "dataset", "model", "trainer", "seed", "rho",
        "hit@10", "ndcg@10", "valid_hit@10", "valid_ndcg@10", "best_epoch", "stopping_epoch", "hit_cap", "seconds",
    ]  # fmt: skip
    assert len(rows) == 3
    assert rows[0]["rho"] == "" and rows[2]["rho"] == "0.1" and rows[2]["name"] == "SAMRec"
    assert float(rows[1]["hit@10"]) == 0.12 and rows[1]["seed"] == "2"


def test_markdown_table_shows_mean_std_n_and_improvement():
    text = report.markdown_tables(report.summarize(HAND_RECORDS))
    lines = text.splitlines()
    assert lines[0] == "### ml-100k"
    assert lines[2] == "| model | n | hit epoch cap | HR@10 | NDCG@10 | vs | Improv. HR@10 | Improv. NDCG@10 |"
    assert "| SASRec | 3 | ? | 0.1200 ± 0.0200 | 0.0600 ± 0.0173 |  |  |  |" in lines
    assert "| SAMRec | 3 | ? | 0.1500 ± 0.0200 | 0.0700 ± 0.0173 | SASRec | +25.00% | +16.67% |" in lines
    assert "| S3Rec+SAM | 1 | ? | 0.1900 | 0.1100 | S3Rec | -5.00% | +10.00% |" in lines
    assert "| CL4SRec+SAM | 1 | ? | 0.0100 | 0.0100 | CL4SRec | n/a | n/a |" in lines


def test_tables_count_the_runs_that_hit_the_epoch_cap():
    records = [record("SASRec", "plain", seed, 0.1, 0.05) for seed in (1, 2)]
    records[0]["history"] = {"hit_cap": True, "best_epoch": 199, "stopping_epoch": 199}
    records[1]["history"] = {"hit_cap": False, "best_epoch": 40, "stopping_epoch": 50}
    assert report.summarize(records)[0]["cap_hits"] == "1/2"
    assert "| SASRec | 2 | 1/2 |" in report.markdown_tables(report.summarize(records))
    assert [row["hit_cap"] for row in report.to_rows(records)] == [True, False]


def test_sweep_tables_have_a_column_per_setting_sorted_by_it():
    records = [record("SASRec", "sam", 1, 0.11, 0.05, rho=rho) for rho in (10.0, 0.001, 0.1)]
    records.append(record("SASRec", "plain", 1, 0.10, 0.05))
    lines = report.markdown_tables(report.summarize(records)).splitlines()
    assert lines[2].startswith("| model | rho | n |")
    assert [line.split(" | ")[1] for line in lines[4:8]] == ["—", "0.001", "0.1", "10"]


def test_display_names_follow_the_paper():
    assert report.display_name("SASRec", "sam") == "SAMRec"
    assert report.display_name("S3Rec", "sam") == "S3Rec+SAM"
    assert report.display_name("CL4SRec", "sam") == "CL4SRec+SAM"
    assert report.display_name("CL4SRec", "plain") == "CL4SRec"


# Figures


def is_png(path):
    data = Path(path).read_bytes()
    return data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_rho_and_sparsity_figures_are_png_files():
    rho = [record("SASRec", "plain", s, 0.1, 0.05, dataset=d) for s in (1, 2) for d in ("a", "b")]
    for s, r, d in itertools.product((1, 2), (0.01, 1.0), ("a", "b")):
        rho.append(record("SASRec", "sam", s, 0.1 + 0.01 * s + r / 100, 0.05, dataset=d, rho=r))
    plot_rho(report.summarize(rho), "rho.png")
    sparsity = [record(m, t, 1, f / 10, f / 20, train_fraction=f) for m, t in runner.SPARSITY_ARMS for f in (0.6, 1.0)]
    plot_sparsity(report.summarize(sparsity), "sparsity.png")
    assert is_png("rho.png") and is_png("sparsity.png")
    with pytest.raises(ConfigError, match="rho"):
        plot_rho(report.summarize(HAND_RECORDS), "none.png")
    with pytest.raises(ConfigError, match="train_fraction"):
        plot_sparsity(report.summarize(HAND_RECORDS), "none.png")


# Command line


def test_rho_command_writes_records_tables_and_figure(capsys):
    fake = FakeRun()
    argv = ["rho", "--rhos", "0.01", "1", "--seeds", "1", "2", "--out", "exp", "--epochs", "2", "--no-progress"]
    cli.main(argv, run_fn=fake)
    assert len(fake.calls) == 6 and all(call["epochs"] == 2 and call["show_progress"] is False for call in fake.calls)
    md = Path("exp/results.md").read_text()
    assert md.startswith("# SAMRec against the radius rho")
    assert "Command: `python run_experiments.py rho --rhos 0.01 1 --seeds 1 2 --out exp --epochs 2 --no-progress`" in md
    assert "Date: " in md and "CPU cores visible" in md and "threads" in md
    # SAMRec at rho 1: hits 0.055 + 0.001 s over seeds 1, 2: 0.0565 ± 0.000707; SASRec 0.0515.
    assert "| SAMRec | 1 | 2 | ? | 0.0565 ± 0.0007 | 0.0283 ± 0.0004 | SASRec | +9.71% | +9.71% |" in md
    rows = list(csv.DictReader(open("exp/results.csv", encoding="utf-8")))
    assert len(rows) == 6 and {row["rho"] for row in rows} == {"", "0.01", "1.0"}
    assert is_png("exp/rho.png")
    assert "SAMRec" in capsys.readouterr().out


def test_sparsity_and_table_commands_write_their_outputs():
    cli.main(["sparsity", "--fractions", "0.5", "1", "--out", "sp", "--no-progress"], run_fn=FakeRun())
    assert is_png("sp/sparsity.png") and len(list(Path("sp/runs").glob("*.json"))) == 6
    assert "| CL4SRec | 0.5 | 1 |" in Path("sp/results.md").read_text()
    cli.main(["table", "--models", "SASRec", "S3Rec", "--no-progress"], run_fn=FakeRun())  # default --out
    md = Path("runs/table/results.md").read_text()
    assert "| S3Rec+SAM | 1 |" in md and "| SAMRec | 1 |" in md
    assert md.startswith("# SASRec, S3Rec with and without SAM")  # the models that ran, not CL4SRec
    assert "Hit epoch cap: how many of the n runs trained for all their epochs" in md
    assert not list(Path("runs/table").glob("*.png"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["table", "--models", "NoSuchModel"], "error: model: 'NoSuchModel' is not a recbole-sam or RecBole model"),
        (["table", "--trainers", "plain", "fancy"], "error: trainer: 'fancy' is not one of sam, plain"),
        (["table", "--datasets", "ml-100k", "no-such-data"], "error: dataset: no atomic file"),
        (["rho", "--rhos", "0.1", "0"], "error: rho: must be a number > 0, got 0.0"),
        (["sparsity", "--fractions", "1.5"], "error: train_fraction: must be a number in (0, 1], got 1.5"),
        (["table", "--set", "seed=3"], "error: set: seed is set by the table grid itself"),
        (["rho", "--set", "rho=3"], "error: set: rho is set by the rho grid itself"),
        (["table", "--set", "epochs"], "error: set: 'epochs' is not KEY=VALUE"),
        (["table", "--set", "epochs=__import__('os')"], "error: epochs: \"__import__('os')\" is not a value (a call)"),
        (["table", "--epochs", "2", "--set", "epochs=3"], "error: set: epochs is also given as --epochs"),
        (["table", "--epochs", "0"], "error: argument --epochs: must be an integer >= 1, got '0'"),
        (["table", "--config-files", "missing.yaml"], "error: config_files: cannot read 'missing.yaml'"),
        (["table", "--set", "topk=[5]"], "error: metrics/topk: the tables need Hit and NDCG at 10"),
        (["table", "--set", "metrics=['Hit','MRR']"], "error: metrics/topk: the tables need Hit and NDCG at 10"),
        (["tables"], "error: argument {table,rho,sparsity}: invalid choice: 'tables'"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_run(argv, message, capsys):
    fake = FakeRun()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--out", "exp"] if argv != ["tables"] else argv, run_fn=fake)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith(message)
    assert fake.calls == [] and not Path("exp").exists()


def test_a_config_error_from_a_run_stops_the_grid_and_is_reported_once(capsys):
    fake = FakeRun(fail_at=1, fail_with=lambda _: ConfigError("loss_type: 'X' is not one of CE, BPR, BCE"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "--models", "SASRec", "--seeds", "1", "2", "--out", "exp", "--no-progress"], run_fn=fake)
    assert exit_info.value.code == 2 and len(fake.calls) == 1
    assert capsys.readouterr().err.strip().splitlines() == ["error: loss_type: 'X' is not one of CE, BPR, BCE"]
    assert list(Path("exp/runs").iterdir()) == []


def test_ctrl_c_says_how_to_resume(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "--models", "SASRec", "--out", "exp", "--no-progress"], run_fn=FakeRun(fail_at=2))
    assert exit_info.value.code == 130
    assert "the same command resumes" in capsys.readouterr().err
    assert len(list(Path("exp/runs").glob("*.json"))) == 1 and partial_files("exp") == []


# One real run of the command line


def test_table_command_end_to_end_on_ml_100k():
    options = dict(TINY_CONFIG)  # every key as --set, but those the command has its own options for
    epochs, stopping_step, seed = 1, options.pop("stopping_step"), options.pop("seed")
    del options["epochs"]
    command = [sys.executable, str(REPO / "run_experiments.py"), "table", "--models", "SASRec"]
    command += ["--trainers", "plain", "sam"]
    command += ["--seeds", str(seed), "--epochs", str(epochs), "--stopping-step", str(stopping_step)]
    command += ["--threads", "1", "--no-progress", "--out", "exp"]
    for key, value in options.items():
        command += ["--set", f"{key}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    records = {path.stem: json.loads(path.read_text()) for path in Path("exp/runs").glob("*.json")}
    assert sorted(records) == ["ml-100k_SASRec_plain_seed=7", "ml-100k_SASRec_sam_seed=7"]
    for stored in records.values():
        hit, ndcg = stored["test_result"]["hit@10"], stored["test_result"]["ndcg@10"]
        assert 0 <= ndcg <= hit <= 1 and set(stored["best_valid_result"]) == {"hit@10", "ndcg@10"}
        assert stored["config"]["epochs"] == 1 and stored["config"]["hidden_size"] == 16  # --set values are literals
        assert stored["command"].startswith("python run_experiments.py table --models SASRec")
    assert any(stored["test_result"]["hit@10"] > 0 for stored in records.values())
    rows = list(csv.DictReader(open("exp/results.csv", encoding="utf-8")))
    names = {"plain": "SASRec", "sam": "SAMRec"}
    stored_hits = {names[r["settings"]["trainer"]]: r["test_result"]["hit@10"] for r in records.values()}
    assert {row["name"]: float(row["hit@10"]) for row in rows} == stored_hits
    sam = records["ml-100k_SASRec_sam_seed=7"]["test_result"]
    assert f"| SAMRec | 1 | 1/1 | {sam['hit@10']:.4f} | {sam['ndcg@10']:.4f} | SASRec |" in Path("exp/results.md").read_text()
    assert not Path("exp/saved").exists() and not Path("saved").exists()  # checkpoints deleted, none in the cwd

    # The same command again trains nothing: the records stay as they were.
    before = {path: path.stat().st_mtime_ns for path in Path("exp/runs").iterdir()}
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in Path("exp/runs").iterdir()} == before
