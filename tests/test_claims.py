"""The claim-by-claim table is computed from run records: rho* on validation, pairs by seed,
the paired 95% t-interval, and the verdict word."""

import json

import pytest

from recbole_sam.experiments import claims
from recbole_sam.experiments.paired import choose_rho
from recbole_sam.run import load_records


def write_record(folder, trainer, seed, hit, valid=0.1, rho=None, **settings):
    own = {"dataset": "ml-100k", "model": "SASRec", "trainer": trainer, "seed": seed, **settings}
    if rho is not None:
        own["rho"] = rho
    record = {
        "settings": own,
        "best_valid_result": {"ndcg@20": valid},
        "test_result": {"hit@10": hit, "ndcg@10": hit / 2},
        "history": {"best_epoch": 3, "stopping_epoch": 13, "hit_cap": seed == 3},
    }
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / f"{trainer}_{rho}_{seed}.json").write_text(json.dumps(record))


def test_a_claim_row_from_two_fake_pairs(tmp_path):
    folder = tmp_path / "verdict" / "ml-100k" / "BCE"
    write_record(folder, "plain", 2, 0.10)
    write_record(folder, "sam", 2, 0.12, rho=0.1)
    write_record(folder, "plain", 3, 0.20)
    write_record(folder, "sam", 3, 0.26, rho=0.1)
    write_record(folder, "sam", 3, 0.90, rho=1.0)  # another rho: not paired
    claim = claims.Claim("SAM lifts SASRec", "+10%", "verdict/ml-100k/BCE", rho=0.1)

    row = claims.measure(claim, tmp_path)

    # differences 0.02 and 0.06: mean 0.04, sd 0.02*sqrt(2), t(0.975, 1) = 12.706
    half = 12.7062 * 0.02 * 2**0.5 / 2**0.5
    mean, low, high, relative = row["hit@10"]
    assert (mean, low, high) == pytest.approx((0.04, 0.04 - half, 0.04 + half), abs=1e-4)
    assert relative == pytest.approx(100 * 0.04 / 0.15)
    assert row["pairs"] == 2 and row["cap"] == 2 and row["verdict"] == "does not hold"  # the interval spans 0
    table = claims.claims_table(tmp_path, [claim])
    assert "| SAM lifts SASRec | +10% | +0.0400 [" in table and "| 0.1 | 2 (2) | **does not hold** |" in table


def test_a_claim_holds_when_every_interval_is_above_zero_and_rho_is_chosen_on_validation(tmp_path):
    folder = tmp_path / "f"
    write_record(folder, "sam", 1, 0.99, valid=0.1, rho=0.01)  # best test, worse validation
    write_record(folder, "sam", 1, 0.00, valid=0.2, rho=0.03)
    for seed, gain in ((2, 0.010), (3, 0.011), (4, 0.012)):
        write_record(folder, "plain", seed, 0.1)
        write_record(folder, "sam", seed, 0.1 + gain, rho=0.03)
        write_record(folder, "sam", seed, 0.0, rho=0.01)
    row = claims.measure(claims.Claim("c", "", "f"), tmp_path)
    assert row["rho"] is None  # the selection grid is incomplete: no rho* yet
    rho = choose_rho(load_records(folder / "runs"), "ndcg@20", (0.01, 0.03))
    assert rho == 0.03
    chosen = claims.measure(claims.Claim("c", "", "f", rho=rho), tmp_path)
    assert chosen["pairs"] == 3 and chosen["verdict"] == "holds"


def test_no_records_is_not_measured_and_the_table_replaces_only_its_part(tmp_path):
    row = claims.measure(claims.Claim("c", "", "nowhere"), tmp_path)
    assert row["verdict"] == "not measured" and row["pairs"] == 0
    text = f"# Results\n\n{claims.BEGIN}\nold table\n{claims.END}\n\nevidence\n"
    new = claims.replace_table(text, "new table")
    assert new == f"# Results\n\n{claims.BEGIN}\nnew table\n{claims.END}\n\nevidence\n"
    with pytest.raises(ValueError, match="markers"):
        claims.replace_table("no markers", "t")


def test_rho_curve_pairs_each_rho_with_the_plain_run_of_its_seed(tmp_path):
    from recbole_sam.experiments import rho_curve

    folder = tmp_path / "grid"
    write_record(folder, "sam", 1, 0.5, rho=0.1)  # the selection seed: never paired
    for seed, plain in ((2, 0.10), (3, 0.20)):
        write_record(folder, "plain", seed, plain)
        write_record(folder, "sam", seed, plain + 0.01, rho=0.1)
    write_record(folder, "sam", 2, 0.05, rho=10.0)  # one pair only: no interval
    curve = rho_curve.load_curve(folder)
    assert [(p["rho"], p["pairs"]) for p in curve] == [(0.1, 2), (10.0, 1)]
    assert curve[0]["hit@10"] == pytest.approx((0.01, 0.01, 0.01))  # equal differences: no spread
    assert curve[1]["hit@10"] is None
    table = rho_curve.curve_markdown(curve)
    assert "| 0.1 | 2 (2) | +0.0100 [+0.0100, +0.0100] |" in table and "| 10 | 1 (0) | – | – |" in table
    rho_curve.plot_rho_curves({"BCE": curve}, str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").stat().st_size > 0


def write_sharpness(folder, objective, label, train_seed, eigenvalue):
    folder.mkdir(parents=True, exist_ok=True)
    output = {
        "settings": {"objective": objective, "rho": 0.05, "iters": 20, "seed": 0},
        "results": [{"label": label, "train_seed": train_seed, "top_eigenvalue": eigenvalue, "loss": 0.5}],
    }
    (folder / f"{label}-seed{train_seed}-{objective}.json").write_text(json.dumps(output))


def test_the_sharpness_claim_is_a_ratio_of_top_eigenvalues_with_its_interval(tmp_path):
    folder = tmp_path / "sharpness" / "Beauty"
    claim = claims.SharpnessClaim("SASRec is sharper", "~10x", "sharpness/Beauty", objectives=("bce", "ce"))
    assert claims.measure_sharpness(claim, tmp_path)["verdict"] == "not measured"  # no outputs yet
    for seed, (sasrec, s3rec, samrec) in {2: (4.0, 1.0, 2.0), 3: (8.0, 2.0, 8.0)}.items():
        for objective in ("bce", "ce"):
            write_sharpness(folder, objective, "SASRec", seed, sasrec)
            write_sharpness(folder, objective, "S3Rec", seed, s3rec)
            write_sharpness(folder, objective, "SAMRec", seed, samrec)

    row = claims.measure_sharpness(claim, tmp_path)

    # S3Rec: both per-seed ratios are 4, so the paired log-ratio interval has no width
    assert row["bce"]["S3Rec"] == pytest.approx((4.0, 4.0, 4.0, 2))
    assert row["bce"]["CL4SRec"] is None  # not measured: shown as such, not in the verdict
    ratio, low, high, n = row["ce"]["SAMRec"]  # ratios 2 and 1: geometric mean sqrt(2)
    assert ratio == pytest.approx(2**0.5) and low < 1 < high and n == 2
    assert row["seeds"] == 2 and row["verdict"] == "holds"  # SAMRec is shown, not claimed flatter
    table = claims.claims_table(tmp_path, [claim])
    assert "| SASRec is sharper | ~10x | S3Rec: 4.00× [4.00, 4.00] (n=2); CL4SRec: –; SAMRec: 1.41× [" in table
    assert table.endswith("| – | 2 seeds | **holds** |")

    write_sharpness(folder, "ce", "S3Rec", 3, 16.0)  # seed 3: S3Rec now sharper than SASRec
    assert claims.measure_sharpness(claim, tmp_path)["verdict"] == "does not hold"
