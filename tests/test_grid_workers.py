"""The experiment grids on Ray: ``--workers 2`` gives the same run records as the serial grid,
resumes like it, and reports a run's bad input as one line."""

import csv
import json
from pathlib import Path

import pytest
from conftest import TINY_CONFIG

pytest.importorskip("ray")

from recbole_sam.errors import ConfigError  # noqa: E402
from recbole_sam.experiments import cli, runner  # noqa: E402
from recbole_sam.tune import executor  # noqa: E402

# What tells one execution from another (time, machine, threads): everything else must match.
EXECUTION_ONLY = ("seconds", "finished", "machine", "command", "files")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: starting it costs seconds on 2 cores."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def grid_argv(out, workers):
    options = dict(TINY_CONFIG)
    argv = ["table", "--models", "SASRec", "--trainers", "plain", "sam", "--seeds", str(options.pop("seed"))]
    argv += ["--epochs", "1", "--stopping-step", str(options.pop("stopping_step")), "--no-progress", "--out", out]
    argv += ["--threads", "1", "--workers", str(workers)]
    del options["epochs"]
    for key, value in options.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def csv_without_seconds(path):
    with open(path, encoding="utf-8") as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


def comparable(record):
    return {key: value for key, value in record.items() if key not in EXECUTION_ONLY}


def test_two_workers_give_the_serial_grid_records_and_resume(local_ray):
    serial = {r["run_id"]: r for r in cli.main(grid_argv("serial", 1))}
    parallel = {r["run_id"]: r for r in cli.main(grid_argv("parallel", 2))}
    assert sorted(serial) == ["ml-100k_SASRec_plain_seed=7", "ml-100k_SASRec_sam_seed=7"]
    assert {k: comparable(r) for k, r in parallel.items()} == {k: comparable(r) for k, r in serial.items()}
    assert parallel["ml-100k_SASRec_sam_seed=7"]["history"]["curve"]  # trained, not faked
    assert csv_without_seconds("parallel/results.csv") == csv_without_seconds("serial/results.csv")
    assert not Path("parallel/saved").exists() and not Path("saved").exists()

    # The parallel grid reads serial records back (same options) and trains nothing.
    Path("parallel/runs/ml-100k_SASRec_sam_seed=7.json").unlink()
    before = Path("parallel/runs/ml-100k_SASRec_plain_seed=7.json").stat().st_mtime_ns
    again = {r["run_id"]: r for r in cli.main(grid_argv("parallel", 2))}
    assert Path("parallel/runs/ml-100k_SASRec_plain_seed=7.json").stat().st_mtime_ns == before
    assert comparable(again["ml-100k_SASRec_sam_seed=7"]) == comparable(serial["ml-100k_SASRec_sam_seed=7"])


def failing_run(model, dataset, config_file_list, config_dict):
    """A run_fn (pickled to the workers) whose sam runs are refused, as a bad option would be."""
    if config_dict["trainer"] == "sam":
        raise ConfigError("loss_type: 'X' is not one of CE, BPR, BCE")
    return {"test_result": {"hit@10": 0.1, "ndcg@10": 0.05}, "best_valid_result": {}, "threads": config_dict["threads"]}


def test_a_run_refused_in_a_worker_is_one_line_exit_2_and_keeps_nothing_half_done(local_ray, capsys):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(__import__(__name__))  # the workers cannot import tests/
    argv = ["table", "--models", "SASRec", "--workers", "2", "--no-progress", "--out", "exp"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv, run_fn=failing_run)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: loss_type: 'X' is not one of CE, BPR, BCE"]
    for path in Path("exp/runs").glob("*.json"):  # the plain run may have finished first: whole, then
        assert json.loads(path.read_text())["settings"]["trainer"] == "plain"
    assert not list(Path("exp").rglob("*partial*")) and not Path("exp/saved").exists()


def test_each_worker_gets_its_share_of_cpus_and_gpus():
    assert executor.gpus_per_task(0, 4) == 0.0
    assert executor.gpus_per_task(1, 4) == 0.25
    assert executor.gpus_per_task(8, 2) == 1.0


def test_workers_and_address_are_checked_before_any_run(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "--workers", "0", "--out", "exp"])
    assert exit_info.value.code == 2 and "error: argument --workers: must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "--models", "SASRec", "--address", "127.0.0.1:1", "--no-progress", "--out", "exp"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: address: cannot reach a Ray cluster at 127.0.0.1:1")
    assert runner is not None and not list(Path("exp").rglob("*.json"))


# The verdict: the same records, on the same executor


def fake_verdict_run(model, dataset, config_file_list, config_dict):
    """A run_fn whose validation prefers rho 0.1 and whose test prefers rho 1: rho* must be 0.1."""
    rho = config_dict.get("rho", 0.0) if config_dict["trainer"] == "sam" else 0.0
    seed = config_dict["seed"]
    valid = 0.2 - 0.05 * rho + 0.001 * seed
    test = 0.1 + 0.05 * rho + 0.001 * seed
    checkpoint = Path(config_dict["checkpoint_dir"]) / "SASRec-fake.pth"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"weights")
    return {
        "checkpoint": str(checkpoint),
        "test_result": {"hit@10": test, "ndcg@10": test / 2},
        "best_valid_result": {"hit@20": valid * 2, "ndcg@20": valid},
        "history": {"curve": [], "best_epoch": 1, "stopping_epoch": 3, "epochs": 4, "hit_cap": False},
    }


def test_the_verdict_chooses_rho_on_validation_pairs_seeds_and_writes_the_one_record(local_ray, capsys):
    import ray.cloudpickle

    from recbole_sam.experiments import verdict
    from recbole_sam.run import RECORD_KEYS, load_records

    ray.cloudpickle.register_pickle_by_value(__import__(__name__))  # the workers cannot import tests/
    options = dict(backbones=["BCE"], rhos=[0.1, 1.0], seeds=[2, 3], settings={"epochs": 4}, workers=2, run_fn=fake_verdict_run)
    # A deadline already passed starts nothing, and keeps nothing half done.
    assert verdict.run_verdict("ml-100k", "v", **options, deadline=0) == {}
    assert not list(Path("v").rglob("*.json"))

    command = "python run_experiments.py verdict"
    capsys.readouterr()
    chosen = verdict.run_verdict("ml-100k", "v", **options, command=command, archive="records.tar.gz")
    assert chosen == {"BCE": 0.1}
    # Progress: what will run is said at once, each record as it lands counts up to the total.
    said = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert said[0] == "5 runs to do, 2 at a time; records go to v/ml-100k/BCE/runs"
    assert any(line.startswith("2 more runs to do") for line in said)  # SAM at rho*, once chosen
    assert said[-1].startswith("[7/7] BCE sam seed ")

    records = load_records("v/ml-100k/BCE/runs")
    names = sorted(record["run_id"] for record in records)
    assert names == sorted(
        ["ml-100k_SASRec_plain_seed=1", "ml-100k_SASRec_sam_rho=0.1_seed=1", "ml-100k_SASRec_sam_rho=1.0_seed=1"]
        + [f"ml-100k_SASRec_plain_seed={s}" for s in (2, 3)]
        + [f"ml-100k_SASRec_sam_rho=0.1_seed={s}" for s in (2, 3)]
    )
    for record in records:  # the one schema: the same keys as the command line's and the grids' records
        assert list(record) == list(RECORD_KEYS) and record["config"]["epochs"] == 4
        assert record["command"] == "python run_experiments.py verdict" and record["history"]["best_epoch"] == 1
    assert not Path("v/ml-100k/BCE/saved").exists()
    import tarfile

    with tarfile.open("records.tar.gz") as archive:  # the records, as laid out under --out
        assert sorted(archive.getnames()) == sorted(["ml-100k/BCE/runs"] + [f"ml-100k/BCE/runs/{name}.json" for name in names])

    # Resumable as the grids are: the same call finds every record and trains nothing.
    before = {path: path.stat().st_mtime_ns for path in Path("v/ml-100k/BCE/runs").iterdir()}
    assert verdict.run_verdict("ml-100k", "v", **options) == {"BCE": 0.1}
    assert capsys.readouterr().out.rstrip().endswith(" nothing to do: every run has a record")
    assert {path: path.stat().st_mtime_ns for path in Path("v/ml-100k/BCE/runs").iterdir()} == before

    # --keep-checkpoints: each run's model stays where its record says (Figure 1 measures them).
    verdict.run_verdict("ml-100k", "k", **dict(options, seeds=[]), keep_checkpoints=True)
    kept = {record["run_id"]: record["files"]["checkpoint"] for record in load_records("k/ml-100k/BCE/runs")}
    assert len(kept) == 3 and all(Path(path).read_bytes() == b"weights" for path in kept.values())
    assert {Path(path).parent.name for path in kept.values()} == set(kept)
    assert all(record["files"]["checkpoint"] is None for record in records)  # without it, none is kept


def test_the_verdict_of_another_model_reads_its_paper_overlay_and_names_its_runs(local_ray):
    import ray.cloudpickle

    from recbole_sam.experiments import verdict
    from recbole_sam.run import load_records

    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    options = dict(backbones=["BCE"], rhos=[0.1, 1.0], seeds=[2], settings={"epochs": 4}, run_fn=fake_verdict_run)
    assert verdict.run_verdict("ml-100k", "t2", model="CL4SRec", **options) == {"BCE": 0.1}
    records = load_records("t2/ml-100k/BCE/runs")
    assert sorted(record["run_id"] for record in records) == sorted(
        ["ml-100k_CL4SRec_plain_seed=1", "ml-100k_CL4SRec_sam_rho=0.1_seed=1", "ml-100k_CL4SRec_sam_rho=1.0_seed=1",
         "ml-100k_CL4SRec_plain_seed=2", "ml-100k_CL4SRec_sam_rho=0.1_seed=2"]
    )  # fmt: skip
    for record in records:  # the dataset's paper file, then CL4SRec's overlay
        assert record["settings"]["model"] == "CL4SRec"
        assert [Path(f).name for f in record["config_files"]] == ["ml-100k.yaml", "CL4SRec.yaml"]

    with pytest.raises(ConfigError, match="model: 'GRU4Rec' has no paper setting; allowed: SASRec, CL4SRec, S3Rec"):
        verdict.run_verdict("ml-100k", "t3", model="GRU4Rec", **options)
    assert not Path("t3").exists()
    # S3Rec's verdict fine-tunes: without its pre-trained file it stops before any run.
    with pytest.raises(ConfigError, match="pre_model_path: not set; train_stage finetune loads a pre-trained model"):
        verdict.run_verdict("ml-100k", "t4", model="S3Rec", **options)
    with pytest.raises(ConfigError, match="pre_model_path: no file '.*missing.pt'"):
        verdict.run_verdict("ml-100k", "t4", model="S3Rec", **dict(options, settings={"pre_model_path": "missing.pt"}))
    assert not Path("t4").exists()


def test_a_local_ray_starts_its_workers_at_the_callers_priority(monkeypatch):
    started = []
    monkeypatch.delenv(executor.NICENESS_VARIABLE, raising=False)
    monkeypatch.setattr(executor.ray_compat, "connect", lambda address, num_cpus: started.append(num_cpus) or True)
    assert executor.start_ray(None, 2) and started == [2]
    import os

    assert os.environ[executor.NICENESS_VARIABLE] == str(os.nice(0))  # Ray's default would be 15


def fake_saf_run(model, dataset, config_file_list, config_dict):
    """A run_fn for SAF: validation prefers the trajectory weight 0.1 (SAF has no rho)."""
    assert config_dict["trainer"] == "plain" or "rho" not in config_dict
    weight = config_dict.get("saf_weight", 0.0) if config_dict["trainer"] == "sam" else 0.0
    valid = 0.2 - abs(weight - 0.1) + 0.001 * config_dict["seed"]
    return {
        "checkpoint": None,
        "test_result": {"hit@10": 0.1 + weight, "ndcg@10": 0.05},
        "best_valid_result": {"hit@20": valid * 2, "ndcg@20": valid},
        "history": {"curve": [], "best_epoch": 1, "stopping_epoch": 3, "epochs": 4, "hit_cap": False},
    }


def test_the_saf_variant_is_selected_on_its_weight_not_on_rho(local_ray):
    import ray.cloudpickle

    from recbole_sam.experiments import paired, verdict
    from recbole_sam.run import load_records

    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    saf = {"epochs": 4, "sam_variant": "saf"}
    options = dict(backbones=["BCE"], rhos=[0.1, 1.0], seeds=[2], run_fn=fake_saf_run)
    assert verdict.run_verdict("ml-100k", "s", **options, settings=saf, grid_key="saf_weight") == {"BCE": 0.1}
    records = load_records("s/ml-100k/BCE/runs")
    assert sorted(r["run_id"] for r in records) == sorted(
        ["ml-100k_SASRec_plain_seed=1", "ml-100k_SASRec_sam_saf_weight=0.1_seed=1",
         "ml-100k_SASRec_sam_saf_weight=1.0_seed=1", "ml-100k_SASRec_plain_seed=2", "ml-100k_SASRec_sam_saf_weight=0.1_seed=2"]
    )  # fmt: skip
    assert [(seed, paired.rho_of(sam)) for seed, _, sam in paired.paired_runs(records, 0.1)] == [(2, 0.1)]

    # A grid over what the variant does not use is refused before any run.
    with pytest.raises(ConfigError, match="grid_key: sam_variant saf is selected on saf_weight, not rho; set --grid-key saf_weight"):
        verdict.run_verdict("ml-100k", "t", **options, settings=saf)
    with pytest.raises(ConfigError, match="grid_key: sam_variant sam is selected on rho, not saf_weight"):
        verdict.run_verdict("ml-100k", "t", **options, settings={"epochs": 4}, grid_key="saf_weight")
    assert not Path("t").exists()
