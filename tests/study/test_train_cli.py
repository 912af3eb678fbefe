"""`wt-study train`: bad input in one line, a run that checkpoints, resumes and samples, a YAML config."""

from __future__ import annotations

import pytest

from study.cli import main
from study.train.loop import load_state
from tests.conftest import EXCERPT


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data", "missing.txt"], "no such file"),
        (["--data", "wikitext-9000"], "not a known corpus"),
        (["--budget", "-3"], "--budget=-3.0"),  # the flag the user typed, not the field
        (["--seq-len", "200000", "--data", str(EXCERPT)], "too long"),
        (["--resume"], "--checkpoint-dir"),
    ],
)
def test_cli_reports_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "run"
    argv = ["train", *flags] + ([] if "--resume" in flags else ["--checkpoint-dir", str(out_dir)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out_dir.exists()


def test_cli_trains_checkpoints_resumes_and_samples(tmp_path, capsys, excerpt):
    run_dir = tmp_path / "run"
    common = [
        "--data",
        excerpt,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--seq-len",
        "32",
        "--n-embd",
        "32",
        "--batch-size",
        "8",
        "--budget-kind",
        "steps",
        "--no-final-full",
    ]
    assert (
        main(
            [
                "train",
                *common,
                "--budget",
                "6",
                "--eval-every-steps",
                "3",
                "--checkpoint-dir",
                str(run_dir),
                "--sample",
                "40",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("training: worker") and "budget 6 steps" in out[0]
    assert any("eval" in line and "step       3" in line for line in out)
    summary = next(i for i, line in enumerate(out) if line.startswith("done: completed | 6 steps"))
    assert len("\n".join(out[summary + 1 :])) >= 40  # the sample
    assert load_state(run_dir / "state.pt")["step"] == 6
    assert main(["train", *common, "--budget", "6", "--checkpoint-dir", str(run_dir)]) == 2  # would overwrite
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "--budget-kind",
                "steps",
                "--budget",
                "9",
                "--threads",
                "1",
                "--checkpoint-dir",
                str(run_dir),
                "--resume",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("resuming at step 6") and "done: completed | 9 steps" in out
    assert load_state(run_dir / "state.pt")["step"] == 9


def test_cli_reads_a_yaml_config_and_flags_override_it(tmp_path, capsys, excerpt):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data: {{corpus: {excerpt}}}\n"
        "model: {arch: standard, block_size: 32, n_embd: 32, n_head: 2, n_layer: 1}\n"
        "train: {batch_size: 4, threads: 1}\nbudget: {kind: steps, value: 50}\n"
        "eval: {final_full: false, val_tokens: 256}\n"
    )
    assert main(["train", "--config", str(config), "--budget", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("training: standard") and "done: completed | 2 steps | 256 tokens" in out
    config.write_text("model: {arch: standard, n_embed: 32}\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "model.n_embed is not a known key" in capsys.readouterr().err
