"""Loss landscapes and sharpness: the maths on quadratics with known answers, then the whole
path (checkpoint -> dataset -> grid, sharpness, plots, command line) on a one-epoch tiny SASRec."""

import csv
import json
import math
import os

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG

from recbole_sam.analysis import cli
from recbole_sam.analysis.landscape import (
    Landscape,
    filter_normalized_directions,
    grid_coords,
    loss_grid,
    model_landscape,
)
from recbole_sam.loading import build_config, load_checkpoint
from recbole_sam.analysis.objective import BatchLoss, model_objective, sample_batches, seed_all
from recbole_sam.analysis.plots import plot_contours, plot_surfaces
from recbole_sam.analysis.sharpness import (
    hessian_trace,
    max_hessian_eigenvalue,
    model_sharpness,
    rho_sharpness,
    top_hessian_eigenvalue,
)
from recbole_sam.errors import ConfigError
from recbole_sam.quick_start import run_recbole_sam

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EIGENVALUES = [5.0, 2.0, 1.0, 0.5, -0.3, 0.1]


def symmetric(eigenvalues, seed=0):
    """Q diag(eigenvalues) Qᵀ with a seeded random orthogonal Q (float64)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=generator, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def quadratic(a, split=2):
    """L(w) = ½ wᵀAw with w stored as two tensors and L returned as two terms, like two
    parameters and two batches: ½ wᵀ(A/2)w + ½ wᵀ(A/2)w."""
    params = [torch.zeros(size, dtype=torch.float64, requires_grad=True) for size in (split, len(a) - split)]

    def terms():
        w = torch.cat(params)
        return [0.5 * w @ (a / 2) @ w, 0.5 * w @ (a / 2) @ w]

    return params, terms


# ----- sharpness on quadratics ---------------------------------------------------------------


def test_power_iteration_recovers_the_top_eigenvalue():
    params, terms = quadratic(symmetric(EIGENVALUES))
    assert top_hessian_eigenvalue(terms, params, iters=200, tol=1e-12) == pytest.approx(5.0, rel=1e-6)


def test_power_iteration_finds_the_largest_magnitude_even_if_negative():
    params, terms = quadratic(symmetric([-4.0, 1.0, 0.5]), split=1)
    assert top_hessian_eigenvalue(terms, params, iters=200, tol=1e-12) == pytest.approx(-4.0, rel=1e-6)


def test_the_largest_eigenvalue_is_found_behind_a_larger_negative_one():
    params, terms = quadratic(symmetric([-4.0, 1.0, 0.5]), split=1)
    assert max_hessian_eigenvalue(terms, params, iters=400, tol=1e-12) == pytest.approx(1.0, rel=1e-6)
    params, terms = quadratic(symmetric(EIGENVALUES))  # dominant and ≥ 0: no second iteration
    dominant = top_hessian_eigenvalue(terms, params, iters=200, tol=1e-12)
    assert max_hessian_eigenvalue(terms, params, iters=200, tol=1e-12) == dominant


def test_hutchinson_is_exact_on_a_diagonal_hessian():
    # Rademacher z has z_i² = 1, so zᵀDz = tr(D) for every sample (Gaussian z would not be exact).
    params, terms = quadratic(torch.diag(torch.tensor([3.0, 1.0, 0.25, 2.0], dtype=torch.float64)))
    assert hessian_trace(terms, params, samples=3, seed=5) == pytest.approx(6.25, rel=1e-12)


def test_hutchinson_trace_is_close_to_the_trace():
    a = symmetric(EIGENVALUES)
    params, terms = quadratic(a)
    samples = 400
    # Var(zᵀAz) = 2 Σ_{i≠j} A_ij² for Rademacher z: allow 4 standard errors.
    off_diagonal = a - torch.diag(torch.diag(a))
    tolerance = 4 * math.sqrt(2 * float((off_diagonal**2).sum()) / samples)
    assert abs(hessian_trace(terms, params, samples=samples, seed=1) - sum(EIGENVALUES)) < tolerance


def test_rho_sharpness_of_a_quadratic_is_half_rho_squared_lambda_max():
    params, terms = quadratic(symmetric(EIGENVALUES))
    rho = 0.1
    expected = 0.5 * rho**2 * max(EIGENVALUES)
    found = rho_sharpness(terms, params, rho=rho, steps=30, seed=3)
    assert found == pytest.approx(expected, rel=1e-3)
    assert found <= expected * (1 + 1e-9)  # the ball's maximum is an upper bound
    assert all(torch.equal(p, torch.zeros_like(p)) for p in params)  # Θ restored


def test_same_seed_same_numbers_other_seed_other_numbers():
    params, terms = quadratic(symmetric(EIGENVALUES))
    first = [hessian_trace(terms, params, samples=5, seed=11), top_hessian_eigenvalue(terms, params, iters=3, seed=11)]
    again = [hessian_trace(terms, params, samples=5, seed=11), top_hessian_eigenvalue(terms, params, iters=3, seed=11)]
    other = [hessian_trace(terms, params, samples=5, seed=12), top_hessian_eigenvalue(terms, params, iters=3, seed=12)]
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


@pytest.mark.parametrize(
    "call, key",
    [
        (lambda t, p: rho_sharpness(t, p, rho=0.0), "rho"),
        (lambda t, p: top_hessian_eigenvalue(t, p, iters=0), "iters"),
        (lambda t, p: hessian_trace(t, p, samples=-1), "samples"),
    ],
)
def test_bad_sharpness_options_are_config_errors(call, key):
    params, terms = quadratic(symmetric(EIGENVALUES))
    with pytest.raises(ConfigError, match=key):
        call(terms, params)


# ----- filter-normalised directions ---------------------------------------------------------


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.items = torch.nn.Embedding(6, 4, padding_idx=0)
        self.linear = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.kernel = torch.nn.Parameter(torch.randn(2, 3, 2))  # 3-D: one row per output unit


def test_filter_normalisation_matches_row_norms_and_skips_1d_and_padding():
    torch.manual_seed(0)
    model = Toy()
    params = dict(model.named_parameters())
    for direction in filter_normalized_directions(model, seed=0):
        assert set(direction) == set(params)
        for name in ("linear.weight", "kernel", "items.weight"):
            rows, theta = direction[name].flatten(1), params[name].detach().flatten(1)
            if name == "items.weight":
                rows, theta = rows[1:], theta[1:]  # row 0 is the padding row
            torch.testing.assert_close(rows.norm(dim=1), theta.norm(dim=1))
        assert torch.count_nonzero(direction["items.weight"][0]) == 0  # padding row
        for name in ("linear.bias", "norm.weight", "norm.bias"):
            assert torch.count_nonzero(direction[name]) == 0
    delta, eta = filter_normalized_directions(model, seed=0)
    assert not torch.allclose(delta["linear.weight"], eta["linear.weight"])


def test_directions_depend_only_on_seed_names_and_shapes():
    torch.manual_seed(0)
    a, b = Toy(), Toy()  # same architecture, different weights
    first, again = filter_normalized_directions(a, seed=4), filter_normalized_directions(a, seed=4)
    other_seed, other_model = filter_normalized_directions(a, seed=5), filter_normalized_directions(b, seed=4)
    for name in first[0]:
        assert torch.equal(first[0][name], again[0][name]) and torch.equal(first[1][name], again[1][name])
    assert not torch.allclose(first[0]["linear.weight"], other_seed[0]["linear.weight"])
    # Another checkpoint of the same architecture: the same draws, scaled to its own rows.
    unit = lambda d: d / d.norm(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(unit(first[0]["linear.weight"]), unit(other_model[0]["linear.weight"]))
    assert not torch.allclose(first[0]["linear.weight"], other_model[0]["linear.weight"])


def test_grid_coords_have_an_exact_zero_and_bad_grids_are_refused():
    coords = grid_coords(7, 0.3)
    assert coords[3] == 0.0 and coords[0] == -0.3 and coords[-1] == 0.3
    for grid, span in ((4, 1.0), (1, 1.0), (5, 0.0), (5, -1.0)):
        with pytest.raises(ConfigError):
            grid_coords(grid, span)


def test_loss_grid_of_a_quadratic_and_parameters_restored_after_an_error():
    model = torch.nn.Linear(2, 2, bias=False)
    theta = model.weight.detach().clone()
    loss = lambda: (model.weight**2).sum().item()  # noqa: E731
    delta, eta = {"weight": torch.ones(2, 2)}, {"weight": torch.tensor([[1.0, -1.0], [0.0, 0.0]])}
    land = loss_grid(model, loss, (delta, eta), grid=3, span=1.0, progress=False)
    a, b = 1.0, -1.0  # losses[j, i]: row j is b, column i is a
    assert land.losses[0, 2] == pytest.approx(float(((theta + a * delta["weight"] + b * eta["weight"]) ** 2).sum()))
    assert land.center_loss == loss()
    assert torch.equal(model.weight, theta)

    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("stop")
        return 0.0

    with pytest.raises(RuntimeError):
        loss_grid(model, failing, (delta, eta), grid=3, progress=False)
    assert torch.equal(model.weight, theta)


# ----- plots --------------------------------------------------------------------------------


def assert_png(path, min_bytes=5000):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    assert os.path.getsize(path) > min_bytes


def test_plots_are_png_files():
    coords = grid_coords(5, 1.0)
    a, b = np.meshgrid(coords, coords)
    sharp, flat = Landscape(coords, 1 + 10 * (a**2 + b**2)), Landscape(coords, 1 + a**2 + b**2)
    plot_surfaces([sharp, flat], ["sharp", "flat"], "surface.png")
    plot_contours([sharp, flat], ["sharp", "flat"], "contour.png", zmax=5.0)
    plot_contours([sharp, Landscape(coords, flat.losses + 100)], ["sharp", "high"], "relative.png", relative=True)
    for name in ("surface.png", "contour.png", "relative.png"):
        assert_png(name)
    with pytest.raises(ConfigError, match="labels"):
        plot_contours([sharp, flat], ["only one"], "x.png")


# ----- a trained SASRec ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A one-epoch tiny SASRec's checkpoint (absolute path), trained once for this module."""
    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)  # RecBole writes saved/, log/ into the working directory
    try:
        result = run_recbole_sam("SASRec", "ml-100k", config_dict=dict(TINY_CONFIG, epochs=1))
    finally:
        os.chdir(cwd)
    return str(folder / result["checkpoint"])


@pytest.fixture(scope="module")
def loaded(checkpoint):
    """The checkpoint loaded with smaller training batches (cheaper Hessian-vector products)."""
    return load_checkpoint(checkpoint, config_dict={"train_batch_size": 64})


def test_loaded_model_holds_the_checkpoint_weights(loaded, checkpoint):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    current = loaded.model.state_dict()
    assert set(saved) == set(current)
    assert all(torch.equal(saved[name], current[name].cpu()) for name in saved)


def test_stored_settings_win_over_todays_package_defaults(checkpoint):
    stored = torch.load(checkpoint, map_location="cpu", weights_only=False)["config"]
    assert "train_scheme" not in stored.external_config_dict  # it came from properties/model/SASRec.yaml
    stored.final_config_dict["train_scheme"] = "prefix"  # as if that default had changed since training
    assert build_config(stored)["train_scheme"] == "prefix"
    assert build_config(stored, config_dict={"train_scheme": "sequence"})["train_scheme"] == "sequence"


def test_sampled_batches_depend_on_the_seed(loaded):
    first, again = sample_batches(loaded.train_data, 2, seed=1), sample_batches(loaded.train_data, 2, seed=1)
    other = sample_batches(loaded.train_data, 2, seed=2)
    field = loaded.model.ITEM_SEQ
    assert all(torch.equal(x[field], y[field]) for x, y in zip(first, again))
    assert not torch.equal(first[0][field], other[0][field])


def test_batch_loss_is_deterministic_and_leaves_the_callers_generators(loaded):
    objective = BatchLoss(loaded.model, sample_batches(loaded.train_data, 1, seed=0), seed=0)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = objective.value()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(456)  # another state of the global generator: same loss
    assert objective.value() == first
    assert BatchLoss(objective.model, objective.batches, seed=1).value() != first  # other negatives


def test_grid_centre_is_the_checkpoint_loss_and_theta_is_restored(loaded):
    model = loaded.model
    theta = {name: t.clone() for name, t in model.state_dict().items()}
    model.train()
    (batch,) = sample_batches(loaded.train_data, 1, seed=3)
    model.eval()
    with torch.no_grad():
        seed_all(3)  # batch 0's draws (the negatives SASRec samples inside calculate_loss)
        expected = model.calculate_loss(batch).item()
    model.train()

    land = model_landscape(model, loaded.train_data, grid=3, span=0.5, batches=1, seed=3, progress=False)

    assert land.losses.shape == (3, 3)
    assert land.center_loss == pytest.approx(expected, rel=1e-6)
    assert np.ptp(land.losses) > 1e-6  # the directions did move the parameters
    assert all(torch.equal(theta[name], t) for name, t in model.state_dict().items())
    assert model.training  # the caller's mode is back


def test_sharpness_of_the_checkpoint_is_seeded_and_leaves_theta(loaded):
    model = loaded.model
    theta = {name: t.clone() for name, t in model.state_dict().items()}
    settings = dict(rho=0.05, iters=2, ascent_steps=1, batches=1)
    first = model_sharpness(model, loaded.train_data, seed=0, **settings)
    again = model_sharpness(model, loaded.train_data, seed=0, **settings)
    assert first == again
    assert all(math.isfinite(value) for value in first.values())
    assert first["rho_sharpness"] > 0  # SAM's ascent direction raises the loss off a minimum
    assert all(torch.equal(theta[name], t) for name, t in model.state_dict().items())


def test_a_checkpoint_for_another_model_is_refused(checkpoint):
    message = r"model: the checkpoint holds SASRec trained on ml-100k, not model 'GRU4Rec'"
    with pytest.raises(ConfigError, match=message):
        load_checkpoint(checkpoint, model="GRU4Rec", dataset="ml-100k", config_dict=dict(TINY_CONFIG))


def test_a_checkpoint_for_other_items_is_refused(checkpoint):
    other_users = dict(TINY_CONFIG, user_inter_num_interval="[26,30]")  # another user slice: other items
    message = r"shapes differ: item_embedding.weight is \(\d+, 16\) in the checkpoint"
    with pytest.raises(ConfigError, match=message) as error:
        load_checkpoint(checkpoint, model="SASRec", dataset="ml-100k", config_dict=other_users)
    assert "\n" not in str(error.value)


def test_a_checkpoint_for_another_size_is_refused(checkpoint):
    with pytest.raises(ConfigError, match=r"does not fit SASRec on ml-100k .*shapes differ: item_embedding.weight"):
        load_checkpoint(checkpoint, config_dict={"hidden_size": 8})


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="no file"):
        load_checkpoint("missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        load_checkpoint("junk.pth")
    torch.save({"weights": torch.zeros(1)}, "plain.pth")
    with pytest.raises(ConfigError, match="not a RecBole checkpoint"):
        load_checkpoint("plain.pth")


# ----- command line -------------------------------------------------------------------------


def test_landscape_command_writes_grid_csv_and_pngs(checkpoint):
    cli.main(["landscape", "--checkpoints", checkpoint, checkpoint, "--labels", "a", "b",
              "--grid", "3", "--batches", "1", "--out", "out", "--no-progress", "--relative"])  # fmt: skip
    raw = np.load("out/landscape.npz")
    assert raw["losses"].shape == (2, 3, 3)
    np.testing.assert_array_equal(raw["losses"][0], raw["losses"][1])  # same directions and batches
    assert list(raw["labels"]) == ["a", "b"]
    with open("out/landscape.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18 and float(rows[4]["loss"]) == pytest.approx(raw["losses"][0, 1, 1])
    assert_png("out/landscape_surface.png")
    assert_png("out/landscape_contour.png")
    assert not [name for name in os.listdir("out") if "partial" in name]


def test_sharpness_command_writes_json(checkpoint):
    cli.main(["sharpness", "--checkpoints", checkpoint, "--labels", "tiny", "--iters", "2",
              "--ascent-steps", "1", "--batches", "1", "--out", "sharpness.json", "--train_batch_size=64"])  # fmt: skip
    with open("sharpness.json", encoding="utf-8") as f:
        report = json.load(f)
    (result,) = report["results"]
    assert result["label"] == "tiny" and result["model"] == "SASRec"
    assert report["settings"]["rho"] == 0.05
    assert result["checkpoint"] == checkpoint
    for key in ("loss", "top_eigenvalue", "hessian_trace", "rho_sharpness"):
        assert math.isfinite(result[key])


def test_sharpness_command_on_the_common_objective_then_the_ratio_table(checkpoint, capsys):
    cli.main(["sharpness", "--checkpoints", checkpoint, checkpoint, "--labels", "a", "b", "--objective", "bce",
              "--iters", "2", "--ascent-steps", "1", "--batches", "1", "--directions", "1", "--radius", "0.2",
              "--out", "sharpness.json", "--train_batch_size=64"])  # fmt: skip
    with open("sharpness.json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["settings"]["objective"] == "bce" and report["settings"]["radius"] == 0.2
    first, second = report["results"]
    assert first["train_seed"] == TINY_CONFIG["seed"]
    measures = ("loss", "top_eigenvalue", "hessian_trace", "rho_sharpness", "top_eigenvalue_over_loss",
                "hessian_trace_over_loss", "rho_sharpness_over_loss", "loss_rise", "relative_loss_rise")  # fmt: skip
    for key in measures:
        assert math.isfinite(first[key]) and first[key] == second[key]  # one checkpoint, one function
    assert first["relative_loss_rise"] > 0
    capsys.readouterr()
    cli.main(["report", "--inputs", "sharpness.json"])
    table = capsys.readouterr().out
    assert "### Objective: bce" in table and "| measure | a (n=1) | b (n=1) | a ÷ b, 95% CI |" in table
    assert "| λ / L (scale-free) |" in table and "1 (one seed)" in table


def test_landscape_command_on_the_common_objective(checkpoint, loaded):
    cli.main(["landscape", "--checkpoints", checkpoint, "--objective", "ce", "--grid", "3", "--batches", "1",
              "--out", "out", "--no-progress", "--train_batch_size=64"])  # fmt: skip
    raw = np.load("out/landscape.npz")
    assert str(raw["objective"]) == "ce"
    expected = model_objective(loaded.model, loaded.train_data, "ce", batches=1, seed=0).value()
    assert raw["losses"][0, 1, 1] == pytest.approx(expected, rel=1e-6)
    assert expected > 1.0  # a full-softmax CE over hundreds of items, not the one-negative BCE the model trained on


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sharpness", "--checkpoints", "missing.pth", "--out", "s.json"], "error: checkpoint: no file 'missing.pth'"),
        (["sharpness", "--checkpoints", "missing.pth", "--rho", "0", "--out", "s.json"], "error: rho: must be"),
        (["landscape", "--checkpoints", "missing.pth", "--grid", "4", "--out", "o"], "error: grid: must be an odd"),
        (["landscape", "--checkpoints", "a.pth", "b.pth", "--labels", "a", "--out", "o"], "error: labels: 1 given"),
        (["sharpness", "--checkpoints", "missing.pth", "--radius", "0", "--out", "s.json"], "error: radius: must be"),
        (["sharpness", "--checkpoints", "missing.pth", "--directions", "0", "--out", "s.json"], "error: directions:"),
    ],
)
def test_command_line_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(message)
    assert not os.path.exists("s.json") and not os.path.exists("o")


def test_command_line_overrides_reach_the_config(checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sharpness", "--checkpoints", checkpoint, "--out", "s.json", "--hidden_size=8"])
    assert exit_info.value.code == 2
    assert "shapes differ: item_embedding.weight" in capsys.readouterr().err


def test_analysis_command_line_refuses_zero_threads(capsys):
    from recbole_sam.analysis.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sharpness", "--checkpoints", "x.pth", "--out", "s.json", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "threads" in capsys.readouterr().err
    assert not os.path.exists("s.json")
