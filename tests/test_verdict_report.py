"""The verdict's arithmetic (recbole_sam.experiments.paired): rho* is chosen on validation only,
runs are paired by seed, and the 95% interval is the paired t-interval; the reports made from
the records in docs/runs/ are the tables of docs/results.md."""

import json
from pathlib import Path

import pytest

from recbole_sam.experiments import paired as verdict_report
from recbole_sam.experiments import verdict
from recbole_sam.experiments.verdict_cli import main as verdict_main
from recbole_sam.run import load_records

DOCS = Path(__file__).resolve().parent.parent / "docs"


def record(trainer, seed, valid, test_hit, rho=None, folder=None):
    settings = {"dataset": "ml-100k", "model": "SASRec", "trainer": trainer, "seed": seed}
    if rho is not None:
        settings["rho"] = rho
    stored = {
        "settings": settings,
        "best_valid_result": {"ndcg@20": valid},
        "test_result": {"hit@10": test_hit, "ndcg@10": test_hit / 2, "unmasked_ndcg@10": test_hit / 4},
        "history": {"best_epoch": 3, "stopping_epoch": 13, "hit_cap": False},
    }
    if folder is not None:
        (folder / "runs").mkdir(parents=True, exist_ok=True)
        name = f"{trainer}_rho={rho}_seed={seed}.json"
        (folder / "runs" / name).write_text(json.dumps(stored))
    return stored


def test_rho_star_is_the_best_validation_score_whatever_the_test_says():
    records = [
        record("plain", 1, 0.10, 0.30),
        record("sam", 1, 0.12, 0.10, rho=0.1),  # best on validation, worst on test
        record("sam", 1, 0.11, 0.90, rho=1.0),
    ]
    table, rho = verdict_report.selection_table(records, "ndcg@20", [0.1, 1.0])
    assert rho == 0.1 and "sam (rho*) | 0.1 |" in table


def test_no_rho_star_while_a_selection_run_is_missing():
    records = [record("plain", 1, 0.10, 0.30), record("sam", 1, 0.12, 0.10, rho=0.1)]
    table, rho = verdict_report.selection_table(records, "ndcg@20", [0.1, 1.0])
    assert rho is None and "1 of 2 SAM runs" in table


def test_pairs_are_by_seed_at_rho_star_only_and_skip_the_selection_seed_and_lone_arms():
    records = [
        record("plain", 1, 0.1, 0.1),
        record("sam", 1, 0.1, 0.1, rho=0.1),
        record("plain", 2, 0.1, 0.20),
        record("sam", 2, 0.1, 0.25, rho=0.1),
        record("sam", 2, 0.1, 0.99, rho=1.0),  # another rho: not part of the verdict
        record("plain", 3, 0.1, 0.30),  # its SAM arm is missing
    ]
    pairs = verdict_report.paired_runs(records, 0.1)
    assert [(seed, p["test_result"]["hit@10"], s["test_result"]["hit@10"]) for seed, p, s in pairs] == [(2, 0.20, 0.25)]


def test_the_interval_is_the_paired_t_interval():
    plain, sam = [0.10, 0.20, 0.30], [0.12, 0.21, 0.33]  # differences 0.02, 0.01, 0.03
    text, relative = verdict_report.paired(plain, sam)
    # mean 0.02, sample std 0.01, t(0.975, 2) = 4.3027: half width 0.01 * 4.3027 / sqrt(3) = 0.0248
    assert text == "+0.0200 [-0.0048, +0.0448]"
    assert relative == pytest.approx(100 * 0.02 / 0.2)


def test_ablation_rows_pair_the_arms_by_seed(tmp_path):
    for seed, plain, sam in ((2, 0.10, 0.12), (3, 0.20, 0.21), (4, 0.30, 0.33)):
        record("plain", seed, 0.1, plain, folder=tmp_path / "left")
        record("sam", seed, 0.1, sam, folder=tmp_path / "left")
    record("plain", 5, 0.1, 0.9, folder=tmp_path / "left")  # no SAM arm: left out of the row
    table = verdict_report.ablation_table({"left": load_records(tmp_path / "left" / "runs")})
    (row,) = [line for line in table.splitlines() if line.startswith("| left |")]
    assert row.startswith("| left | 2, 3, 4 | 0.2000 | 0.2200 | +0.0200 [-0.0048, +0.0448] (+10.0%) |")


def test_one_pair_has_no_interval():
    assert verdict_report.paired_interval([0.1], [0.3]) == (pytest.approx(0.2), None)
    assert verdict_report.paired([0.1], [0.3])[0] == "+0.2000 (one pair: no interval)"


@pytest.mark.parametrize("dataset", ["ml-100k", "Beauty"])
def test_the_verdict_tables_of_docs_results_md_regenerate_from_the_records(dataset, capsys):
    verdict_main(["verdict-report", "--out", str(DOCS / "runs" / "verdict"), "--dataset", dataset])
    tables = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(tables) > 20
    published = (DOCS / "results.md").read_text(encoding="utf-8").splitlines()
    assert [line for line in tables if line not in published] == []


def test_the_ablation_table_of_docs_results_md_regenerates_from_the_records(capsys):
    verdict_main(["ablation-report", "--out", str(DOCS / "runs" / "ablation"), "--dataset", "ml-100k"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in rows[1:]] == ["| " + name for name in verdict.ABLATIONS]
    published = (DOCS / "results.md").read_text(encoding="utf-8").splitlines()
    assert [line for line in rows if line not in published] == []


def test_the_report_names_the_model_of_its_records():
    records = [record("plain", 1, 0.10, 0.30), record("sam", 1, 0.12, 0.10, rho=0.1)]
    for one in records:
        one["settings"]["model"] = "CL4SRec"
    report = verdict_report.verdict_report({"BCE": records}, "ml-100k", "ndcg@20", [0.1])
    assert "### ml-100k, BCE CL4SRec: rho selection (seed 1)" in report and "SASRec" not in report
