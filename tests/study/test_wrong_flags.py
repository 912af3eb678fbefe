"""A wrong flag is one sentence on stderr (exit 2) that names the flag the user typed, with its value and what is
allowed, before anything runs; a location is refused without reaching any filesystem."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest
import yaml

from study.cli import main
from tests.conftest import EXCERPT

TINY_BENCH = ["--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--steps", "1", "--warmup", "0", "--no-dropout-row"]
TINY_BENCH += ["--archs", "worker", "--attentions", "sdpa"]


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err.split("error: ", 1)[1]


@pytest.fixture
def no_filesystem(monkeypatch):
    """Opening any URI fails the test: a malformed location must be refused before it is tried."""

    def opened(uri):
        raise AssertionError(f"{uri!r} was opened")

    class Guarded:  # pyarrow.fs, except that FileSystem.from_uri fails
        FileSystem = SimpleNamespace(from_uri=opened)

        def __getattr__(self, name):
            return getattr(pafs, name)

    monkeypatch.setattr("wt_base.storage.pafs", Guarded())


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("s3://", "--storage='s3://' has no bucket: expected s3://bucket/prefix."),
        ("gs://", "--storage='gs://' has no bucket: expected gs://bucket/prefix."),
        ("s3:///prefix", "--storage='s3:///prefix' has no bucket: expected s3://bucket/prefix."),
        ("s3://?endpoint_override=h:9000", "--storage='s3://?endpoint_override=h:9000' has no bucket"),
        ("file://", "--storage='file://' has no path: expected file:///absolute/path or a directory path."),
        ("s3:/bucket/wt", "--storage='s3:/bucket/wt' is a URI with one slash: expected s3://bucket/wt, or a"),
    ],
)
def test_a_storage_uri_without_its_bucket_is_refused_naming_the_flag(storage, message, no_filesystem, capsys):
    assert _refused(["run", "--dry-run", "--storage", storage], capsys).startswith(message)


def test_the_same_location_mistakes_in_a_spec_or_a_path_name_the_key_or_the_argument(no_filesystem, write_spec, capsys):
    assert _refused(["run", str(write_spec(storage="s3://"))], capsys).startswith("storage='s3://' has no bucket")
    assert _refused(["status", "s3://"], capsys) == "PATH='s3://' has no bucket: expected s3://bucket/prefix."


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seq-len", "0"], "--seq-len=0 is invalid: expected an integer >= 1."),
        (["--lr", "0"], "--lr=0.0 is invalid: expected a number > 0."),
        (["--n-head", "3"], "--n-head=3 is invalid: expected a divisor of n_embd=64."),
        (["--budget", "-1"], "--budget=-1.0 is invalid: expected a finite number > 0."),
        (["--checkpoint-every-s", "-1"], "--checkpoint-every-s=-1.0 is invalid: expected a number of seconds >= 0"),
        (["--data", "no-such-file.txt"], "--data='no-such-file.txt': no such file"),
        (["--sample", "-1"], "--sample=-1 is invalid: expected a number of characters >= 0."),
        (["--budget-kind", "steps", "--budget", "0.5", "--data", str(EXCERPT)], "--budget=0.5 is smaller than one"),
    ],
)
def test_train_says_the_flag_not_the_config_field(flags, message, capsys):
    assert _refused(["train", *flags], capsys).startswith(message)


def test_train_names_the_field_when_a_config_file_set_it(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": {"block_size": 0}}))
    err = _refused(["train", "--config", str(config), "--lr", "0.01"], capsys)
    assert err == "model: ModelConfig.block_size=0 is invalid: expected an integer >= 1."


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seq-lens", "0"], "--seq-lens=[0] is invalid: expected integers >= 1."),  # was about --batch-sizes
        (["--seq-lens", "64", "0"], "--seq-lens=[64, 0] is invalid: expected integers >= 1."),
        (["--batch-sizes", "0"], "--batch-sizes=[0] is invalid: expected integers >= 1."),
        (["--n-embd", "0"], "--n-embd=0 is invalid: expected an integer >= 1."),  # was a ValueError traceback
        (["--dropout", "1.5"], "--dropout=1.5 is invalid: expected a number in [0, 1)."),
        (["--worker-interval", "0"], "--worker-interval=0 is invalid: expected an integer >= 1."),
    ],
)
def test_bench_says_the_flag_that_is_wrong(flags, message, capsys):
    assert _refused(["bench", *TINY_BENCH, *flags], capsys) == message


def test_bench_with_one_sequence_length_takes_a_batch_for_it(capsys):
    assert main(["bench", *TINY_BENCH, "--seq-lens", "64"]) == 0  # refused before: the default was two batches
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("worker k=4 ")]
    assert [(r[5], r[6]) for r in rows] == [("64", "64")]  # T and batch (the arm takes two words): 4096 tokens a batch


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--name", "bad/name"], "--name='bad/name' is invalid: expected 1-64 letters"),
        (["--data", "no-such-file.txt"], "--data='no-such-file.txt': no such file"),
    ],
)
def test_run_says_the_override_flag(flags, message, capsys):
    assert _refused(["run", "--dry-run", *flags], capsys).startswith(message)


def test_analyze_refuses_an_empty_out(tmp_path, capsys):
    assert (
        _refused(["analyze", str(tmp_path), "--out", ""], capsys)
        == "--out is empty: expected the directory the report goes to."
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--budget", "x"], "wt-study train: error: argument --budget: invalid float value: 'x'"),
        (["run", "--bogus"], "wt-study run: error: unrecognized arguments: --bogus (`wt-study run --help` lists"),
        (["trian"], "wt-study: error: argument COMMAND: invalid choice: 'trian'"),
    ],
)
def test_a_flag_argparse_refuses_is_one_line_naming_it_without_the_usage_block(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(message), err
