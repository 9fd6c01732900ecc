"""The README and the docs pages say what is true: the two commands CI runs, links that lead
somewhere, Python snippets that run, and command-line flags that the scripts accept."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# The README's two commands, exactly: CI (.ci/run) and people copy them.
MAIN_COMMAND = 'pip install "torch==2.13.0" -e . && python run_recbole_sam.py'
TEST_INSTALL = 'pip install "torch==2.13.0" -e ".[test,tune]"'
TEST_COMMAND = TEST_INSTALL + " && python -m pytest -q"

# The pages cut out of the old README, and the README: their links' headings are checked too
# (the other docs pages' links only for their files).
MOVED_PAGES = {"README.md", "usage.md", "options.md", "experiments.md", "tune.md", "recbole_fixes.md", "layout.md"}

# Small runs for the snippets: their own config_dict keys still win.
SNIPPET_CONFIG = {"epochs": 1, "show_progress": False, "state": "WARNING"}
SNIPPET_PAGES = [README, ROOT / "docs" / "usage.md"]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def fenced_blocks(text, language=None):
    """The fenced code blocks of a Markdown text, those of ``language`` only if given."""
    return [body for lang, body in FENCE.findall(text) if language is None or lang == language]


def test_readme_has_the_two_commands_exactly():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert MAIN_COMMAND in lines
    assert TEST_COMMAND in lines


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install_lines = [line.strip() for line in ci.splitlines() if line.strip().startswith(TEST_INSTALL + " && ")]
    assert install_lines, f".ci/run has no line starting with {TEST_INSTALL!r}"
    # .ci/run calls pytest through a helper function: it must be the README's pytest call.
    assert "python -m pytest -q" in ci


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 150


# --- links ---------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def github_anchor(heading):
    """GitHub's id of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {github_anchor(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def relative_links(page):
    """(target, anchor) of every link that is not a URL, outside code blocks."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield path, anchor


def test_github_anchor_matches_githubs_rule():
    assert github_anchor("How SAM fits in RecBole's loop") == "how-sam-fits-in-recboles-loop"
    assert github_anchor("Speed: packed batches, fast evaluation, threads") == "speed-packed-batches-fast-evaluation-threads"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings(page):
    broken = []
    for path, anchor in relative_links(page):
        target = (page.parent / path).resolve() if path else page
        name = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else str(target)
        if not target.exists():
            broken.append(f"{path}: no such file")
            continue
        if anchor and page.name in MOVED_PAGES and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{path}#{anchor}: no such heading in {name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


# --- Python snippets ---------------------------------------------------------------------------


def snippet_script(page):
    """The page's ```python blocks as one script, each training call given SNIPPET_CONFIG."""
    blocks = fenced_blocks(page.read_text(encoding="utf-8"), "python")
    assert blocks, f"{page.name} has no python snippet"
    for block in blocks:
        if "run_recbole_sam(" in block or "SAMConfig(" in block:
            assert "config_dict={" in block, f"{page.name}: a training snippet without config_dict"
    script = "\n".join(blocks).replace("config_dict={", "config_dict={**SNIPPET_CONFIG, ")
    return f"SNIPPET_CONFIG = {SNIPPET_CONFIG!r}\n{script}"


def test_snippet_script_shrinks_every_training_call():
    script = snippet_script(ROOT / "docs" / "usage.md")
    assert script.count("config_dict={**SNIPPET_CONFIG, ") >= 2
    assert "config_dict={\"" not in script


@pytest.mark.parametrize("page", SNIPPET_PAGES, ids=lambda page: page.name)
def test_python_snippets_run(page, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run(
        [sys.executable, "-c", snippet_script(page)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if page == README:
        assert "hit@10" in done.stdout


# --- flags of the documented commands ---------------------------------------------------------


def _parsers():
    from recbole_sam.analysis.cli import build_parser as analysis_parser
    from recbole_sam.experiments.cli import build_parser as experiments_parser
    from recbole_sam.experiments.verdict_cli import build_parser as verdict_parser
    from recbole_sam.tune.cli import build_parser as tune_parser

    # (parsers that may hold the subcommand, whether any other --key=value is a run property)
    return {
        "run_experiments.py": ([experiments_parser(), verdict_parser()], False),
        "run_analysis.py": ([analysis_parser()], True),
        "run_recbole_sam_tune.py": ([tune_parser()], True),
    }


def subcommands(parser):
    actions = [action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"]
    return actions[0].choices if actions else {}


def documented_commands(page):
    """Every ``python <script> ...`` command of a page: code-block lines (continuations joined,
    comments dropped) and inline code spans (which may wrap)."""
    text = page.read_text(encoding="utf-8")
    commands = []
    for block in fenced_blocks(text):
        variables = {}  # a block's shell variables (common="table --seeds 1 2"), expanded
        for line in block.replace("\\\n", " ").splitlines():
            assigned = re.match(r'(\w+)="([^"]*)"$', line.strip())
            if assigned:
                variables[assigned[1]] = assigned[2]
            line = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), line)
            commands.append(line.split(" #")[0])
    commands += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", FENCE.sub("", text))]
    return [command[command.index("python ") :] for command in commands if re.search(r"python \S+\.py", command)]


def flag_problems(command, parsers):
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    script = Path(words[1]).name
    if script not in parsers:
        return []
    candidates, properties_allowed = parsers[script]
    rest = words[2:]
    parser = candidates[0]
    if rest and not rest[0].startswith("-"):
        found = [subcommands(p)[rest[0]] for p in candidates if rest[0] in subcommands(p)]
        if not found:
            return [f"{script}: no subcommand {rest[0]!r}"]
        parser, rest = found[0], rest[1:]
    known = set(parser._option_string_actions)
    problems = []
    for word in rest:
        if not word.startswith("--"):
            continue
        flag, equals, _ = word.partition("=")
        if flag in known or (equals and properties_allowed):
            continue
        problems.append(f"{command}: {flag} is not an option")
    return problems


def test_flag_check_catches_a_wrong_flag():
    parsers = _parsers()
    assert flag_problems("python run_experiments.py rho --seeds 1 2 --epochs 3", parsers) == []
    assert flag_problems("python run_experiments.py rho --data_path dataset/", parsers)
    assert flag_problems("python run_experiments.py claims --runs docs/runs --write x.md", parsers) == []
    assert flag_problems("python run_experiments.py verdict --seed 2", parsers)
    assert flag_problems("python run_recbole_sam_tune.py --num_samples 8 --epochs=20", parsers) == []
    assert flag_problems("python run_recbole_sam_tune.py --num-samples 8", parsers)
    found = documented_commands(ROOT / "docs" / "experiments.md")
    assert "python run_experiments.py ablation --dataset ml-100k --seeds 2 3 4" in found  # an inline span that wraps
    assert sum("run_experiments.py" in command for command in found) >= 8


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_documented_flags_exist(page):
    parsers = _parsers()
    problems = [problem for command in documented_commands(page) for problem in flag_problems(command, parsers)]
    assert not problems, "\n".join(problems)
