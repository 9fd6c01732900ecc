"""What every supported stack (Python 3.11-3.13, NumPy 1 and 2) must show a user: no library noise
on stderr, results as plain numbers, and the CI stages that test those stacks."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from recbole_sam import cli
from recbole_sam.compat import plain_numbers

REPO = Path(__file__).resolve().parent.parent


def test_bad_value_is_one_stderr_line_even_when_recbole_is_compiled_afresh(tiny_config):
    # Without bytecode written (and none in a uv-installed venv), Python >= 3.12 compiles RecBole's
    # dien.py on every run and would add its 4-line SyntaxWarning to the one error line.
    command = [sys.executable, str(REPO / "run_recbole_sam.py"), "--rho=-1"]
    command += [f"--{key}={value}" for key, value in tiny_config.items()]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: rho: must be a number > 0, got -1"]


def test_only_dien_syntax_warning_is_filtered():
    # Compile dien.py's source afresh under its own path (filtered) and under another (not, on
    # Python >= 3.12, where the invalid escape is a SyntaxWarning; before, a hidden DeprecationWarning).
    script = """
import sys, warnings
import recbole_sam
import recbole.model.sequential_recommender.dien as dien
source = open(dien.__file__, encoding="utf-8").read()
with warnings.catch_warnings(record=True) as own:
    compile(source, dien.__file__, "exec")
with warnings.catch_warnings(record=True) as other:
    compile(source, "elsewhere/dien_copy.py", "exec")
print(len(own), len([w for w in other if issubclass(w.category, SyntaxWarning)]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    own, other = map(int, done.stdout.split())
    assert own == 0
    assert other == (2 if sys.version_info >= (3, 12) else 0)  # RecBole 1.2.1's dien.py has two


def test_results_print_as_plain_numbers(monkeypatch, capsys):
    # RecBole's metrics are NumPy scalars; NumPy 2's repr would print np.float64(0.0127).
    result = {
        "best_valid_result": {"hit@10": np.float64(0.0127), "ndcg@10": np.float32(0.5)},
        "test_result": {"hit@10": np.float64(0.25), "ndcg@10": 0.125},
        "checkpoint": None,
    }
    monkeypatch.setattr(cli, "_train", lambda *args: result)
    cli.main(["--epochs=1"])
    assert capsys.readouterr().out.splitlines() == [
        "best valid: {'hit@10': 0.0127, 'ndcg@10': 0.5}",
        "test result: {'hit@10': 0.25, 'ndcg@10': 0.125}",
    ]


def test_plain_numbers_keeps_keys_order_and_python_values():
    plain = plain_numbers({"b": np.int64(3), "a": np.float64(0.1), "c": 2.5})
    assert list(plain) == ["b", "a", "c"] and plain == {"b": 3, "a": 0.1, "c": 2.5}
    assert all(type(value) in (int, float) for value in plain.values())
    assert plain_numbers(None) == {}


def run_ci(*args, **env):
    return subprocess.run(
        ["bash", str(REPO / ".ci" / "run"), *args], capture_output=True, text=True, timeout=60, env=dict(os.environ, **env)
    )


def test_ci_refuses_an_unknown_stage_naming_the_four():
    done = run_ci("py311")
    assert done.returncode == 2
    assert "pinned|newest|py312|py313" in done.stderr


def test_ci_python_stage_fails_loudly_without_its_interpreter(tmp_path):
    done = run_ci("py313", CI_PYTHON_3_13=str(tmp_path / "no-python"))
    assert done.returncode != 0
    assert "CI: no Python 3.13 found" in done.stderr and "CI_PYTHON_3_13" in done.stderr


def test_ci_runs_every_stage_and_names_each_failure(tmp_path):
    # The first stage's failure must neither stop the second nor be hidden by its success.
    done = run_ci(CI_STAGES="py312 py313", CI_PYTHON_3_12=str(tmp_path / "none"), CI_PYTHON_3_13=str(tmp_path / "none"))
    assert done.returncode == 1
    assert "CI: no Python 3.12 found" in done.stderr and "CI: no Python 3.13 found" in done.stderr
    assert "CI: FAILED stages: py312 py313" in done.stderr
