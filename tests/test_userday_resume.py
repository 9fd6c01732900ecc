"""Resume: an interrupted run goes on from its last epoch and ends as an uninterrupted one."""

import os
import time

import pytest

import recbole_sam.checkpoint
from recbole_sam.checkpoint import SafeCheckpointMixin, remove_orphaned_partials
from recbole_sam.errors import ConfigError, Interrupted
from recbole_sam.experiments import runner
from recbole_sam.quick_start import run_recbole_sam


def interrupt_after_epoch(monkeypatch, stop_epoch):
    """Raise KeyboardInterrupt right after the last-epoch checkpoint of ``stop_epoch`` is written,
    as Ctrl-C during the next epoch would."""
    save = SafeCheckpointMixin.save_last_checkpoint

    def save_then_stop(self, epoch):
        save(self, epoch)
        if epoch == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(SafeCheckpointMixin, "save_last_checkpoint", save_then_stop)


def count_trained_epochs(monkeypatch):
    """The list that the epochs trained from now on are appended to (by index)."""
    epochs_trained = []
    train_epoch = SafeCheckpointMixin._train_epoch

    def counting(self, train_data, epoch_idx, *args, **kwargs):
        epochs_trained.append(epoch_idx)
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(SafeCheckpointMixin, "_train_epoch", counting)
    return epochs_trained


@pytest.mark.parametrize("trainer", ["sam", "plain"])
def test_resumed_run_ends_with_the_uninterrupted_metrics_and_history(trainer, tiny_config, monkeypatch):
    settings = dict(tiny_config, epochs=4, stopping_step=10, learning_rate=0.01, trainer=trainer)
    uninterrupted = run_recbole_sam("SASRec", "ml-100k", config_dict=dict(settings))

    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=1)
        with pytest.raises(Interrupted, match="resume with: python run_recbole_sam.py --resume_from=") as stopped:
            run_recbole_sam("SASRec", "ml-100k", config_dict=dict(settings))
    last = str(stopped.value).split("--resume_from=")[1]
    assert os.path.isfile(last) and last.endswith("-last.pth")

    resumed = run_recbole_sam(resume_from=last)

    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["best_valid_result"] == uninterrupted["best_valid_result"]
    assert resumed["history"] == uninterrupted["history"]  # curve (losses, metrics), best and stopping epoch
    assert [entry["epoch"] for entry in resumed["history"]["curve"]] == [0, 1, 2, 3]
    assert resumed["run_id"] in last and not os.path.exists(last)  # same run; finished, so nothing to resume
    assert os.path.isfile(resumed["result_file"])


def test_an_interrupted_grid_run_goes_on_from_its_last_epoch(tiny_config, monkeypatch):
    settings = dict(tiny_config, epochs=4, stopping_step=10, learning_rate=0.01)
    del settings["seed"]  # the grid's own
    runs = runner.expand_grid([("SASRec", "sam", {"rho": 0.05})], ["ml-100k"], [7])
    (uninterrupted,) = runner.run_grid(runs, "whole", settings, progress=False)

    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=1)
        with pytest.raises(KeyboardInterrupt):
            runner.run_grid(runs, "grid", settings, progress=False)
    assert not os.path.exists("grid/runs/" + runs[0].run_id + ".json")
    (last,) = [name for name in os.listdir("grid/saved/" + runs[0].run_id) if name.endswith("-last.pth")]

    epochs_trained = count_trained_epochs(monkeypatch)
    # Display-only options (the console's level, threads) may change; the run still resumes.
    (resumed,) = runner.run_grid(runs, "grid", dict(settings, state="ERROR", threads=1), progress=False)

    assert epochs_trained == [2, 3]  # not restarted
    assert resumed["resumed_at_epoch"] == 2 and uninterrupted["resumed_at_epoch"] is None
    assert resumed["seconds"] > 0
    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["history"] == uninterrupted["history"]
    assert not os.path.exists("grid/saved")  # finished: its checkpoints went


def test_a_grid_run_left_by_other_settings_or_unreadable_starts_again(tiny_config, monkeypatch):
    settings = dict(tiny_config, epochs=3, stopping_step=10)
    del settings["seed"]
    runs = runner.expand_grid([("SASRec", "plain", {})], ["ml-100k"], [7])
    folder = "grid/saved/" + runs[0].run_id
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(KeyboardInterrupt):
            runner.run_grid(runs, "grid", settings, progress=False)
    (last,) = [name for name in os.listdir(folder) if name.endswith("-last.pth")]

    # Another learning rate: the old folder goes, and the run starts from epoch 0.
    (record,) = runner.run_grid(runs, "grid", dict(settings, learning_rate=0.002), progress=False)
    assert record["resumed_at_epoch"] is None and not os.path.exists(folder)

    # The same settings, but a checkpoint that cannot be read: the run starts again.
    os.remove("grid/runs/" + runs[0].run_id + ".json")
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(KeyboardInterrupt):
            runner.run_grid(runs, "grid", settings, progress=False)
    (last,) = [name for name in os.listdir(folder) if name.endswith("-last.pth")]
    with open(os.path.join(folder, last), "wb") as broken:
        broken.write(b"not a checkpoint")
    (record,) = runner.run_grid(runs, "grid", settings, progress=False)
    assert record["resumed_at_epoch"] is None and record["history"]["stopping_epoch"] == 2


def test_resume_latest_finds_the_unfinished_run_and_refuses_when_none(tiny_config, monkeypatch):
    settings = dict(tiny_config, epochs=3)
    with pytest.raises(ConfigError, match="resume: no unfinished run of SASRec on ml-100k"):
        run_recbole_sam("SASRec", "ml-100k", config_dict=dict(settings), resume_from="latest")
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(Interrupted):
            run_recbole_sam("SASRec", "ml-100k", config_dict=dict(settings))
    stopped_run = [name for name in os.listdir("saved") if name.endswith("-last.pth")]
    result = run_recbole_sam("SASRec", "ml-100k", config_dict={}, resume_from="latest")
    assert stopped_run == [f"{result['run_id']}-last.pth"]
    assert result["history"]["stopping_epoch"] == 2


def test_interrupt_before_the_first_epoch_ends_says_there_is_nothing_to_resume(tiny_config, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("recbole_sam.trainer.SAMTrainer._train_epoch", stop)
    with pytest.raises(Interrupted, match="nothing to resume"):
        run_recbole_sam("SASRec", "ml-100k", config_dict=tiny_config)


def test_orphaned_partial_files_are_cleaned_but_fresh_ones_kept(tmp_path):
    old, fresh = tmp_path / ".SASRec-x.1234abcd.partial.pth", tmp_path / ".SASRec-y.5678abcd.partial.pth"
    for path in (old, fresh):
        path.write_bytes(b"half")
    hours_ago = time.time() - 2 * recbole_sam.checkpoint.ORPHAN_AGE_S
    os.utime(old, (hours_ago, hours_ago))
    assert remove_orphaned_partials(tmp_path) == [str(old)]
    assert not old.exists() and fresh.exists()


def test_sigterm_on_the_command_line_says_how_to_resume_and_leaves_no_partial_file(tiny_config):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "run_recbole_sam.py"
    settings = dict(tiny_config, epochs=200, stopping_step=200)
    command = [sys.executable, str(script), *[f"--{key}={value}" for key, value in settings.items()]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(Path("saved").glob("*-last.pth")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]  # 128 + SIGTERM, as a shell reports it
    assert err.strip().splitlines()[-1].startswith("interrupted; resume with: python run_recbole_sam.py --resume_from=saved/")
    assert [name for name in os.listdir("saved") if "partial" in name] == []


@pytest.mark.parametrize("model", ["CL4SRec", "S3Rec"])
def test_the_self_supervised_models_resume_like_sasrec(model, tiny_config, tmp_path, monkeypatch):
    settings = dict(tiny_config, epochs=3, stopping_step=10, trainer="sam")
    if model == "S3Rec":  # fine-tuning, from a tiny pre-training of ours
        pretrained = run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(
            tiny_config, train_stage="pretrain", pretrain_epochs=1, save_step=1, checkpoint_dir=str(tmp_path)))
        settings.update(train_stage="finetune", pre_model_path=pretrained["checkpoint"])
    uninterrupted = run_recbole_sam(model, "ml-100k", config_dict=dict(settings))
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(Interrupted) as stopped:
            run_recbole_sam(model, "ml-100k", config_dict=dict(settings))
    resumed = run_recbole_sam(resume_from=str(stopped.value).split("--resume_from=")[1])
    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["history"] == uninterrupted["history"]


def test_an_interrupted_s3rec_fine_tuning_in_a_grid_goes_on_from_its_last_epoch(tiny_config, tmp_path, monkeypatch):
    pretrained = run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(
        tiny_config, train_stage="pretrain", pretrain_epochs=1, save_step=1, checkpoint_dir=str(tmp_path)))
    settings = dict(tiny_config, epochs=3, stopping_step=10, train_stage="finetune", pre_model_path=pretrained["checkpoint"])
    del settings["seed"]  # the grid's own
    runs = runner.expand_grid([("S3Rec", "sam", {"rho": 0.05})], ["ml-100k"], [7])
    (uninterrupted,) = runner.run_grid(runs, "whole", settings, progress=False)
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(KeyboardInterrupt):
            runner.run_grid(runs, "grid", settings, progress=False)

    epochs_trained = count_trained_epochs(monkeypatch)
    (resumed,) = runner.run_grid(runs, "grid", settings, progress=False)
    assert epochs_trained == [1, 2] and resumed["resumed_at_epoch"] == 1  # not restarted
    assert resumed["test_result"] == uninterrupted["test_result"] and resumed["history"] == uninterrupted["history"]
