"""Specs: parsing, round trips, and every bad spec refused with one line and exit code 2, nothing written."""

from __future__ import annotations

import pytest

from study.cli import main
from study.config.spec import Distribution, SampleSpec, StudySpec
from study.config.specfile import dump_spec, load_preset, parse_spec, preset_names
from tests.study.conftest import TINY_SPEC
from wt_base.errors import StudyError
from wt_base.yamlio import parse_yaml


def test_presets_parse_and_round_trip():
    assert {"smoke", "seed-replication", "scaling", "lr-sweep"} <= set(preset_names())
    for name in preset_names():
        spec = load_preset(name)
        assert parse_spec(parse_yaml(dump_spec(spec), "dumped")) == spec


def test_seed_replication_matches_the_seed_settings():
    spec = load_preset("seed-replication")
    assert spec.axes["seq_len"] == (1024,)
    assert (spec.model.n_embd, spec.model.n_layer, spec.model.n_head) == (256, 4, 4)
    assert (spec.train.batch_size, spec.train.lr, spec.train.schedule) == (16, 3e-4, "constant")
    assert (spec.budget.kind, spec.budget.value) == ("seconds", 300)
    assert set(spec.axes["attention"]) == {"naive", "sdpa"}
    assert len(spec.seeds) >= 5 and spec.model.init == "torch"


def test_defaults_fill_missing_sections():
    spec = parse_spec({"name": "x"})
    assert spec == StudySpec(name="x")


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"colour": "red"}, "colour is not a known key"),
        ({"train": {"lr": "fast"}}, "train.lr='fast'"),
        ({"train": {"momentum": 0.9}}, "train.momentum is not a known key"),
        ({"axes": {"seq_len": []}}, "axes.seq_len is empty"),
        ({"axes": {"depth": [1, 2]}}, "axes.depth is not a known axis"),
        ({"axes": {"arch": ["mamba"]}}, "'mamba'"),
        ({"budget": {"value": 0}}, "budget.value=0"),
        ({"budget": {"value": -5}}, "budget.value=-5"),
        ({"budget": {"kind": "hours"}}, "budget.kind='hours'"),
        ({"name": "a/b"}, "name='a/b'"),
        ({"seeds": 0}, "seeds=0"),
        ({"seeds": [1, 1]}, "repeats a seed"),
        ({"scheduler": {"kind": "pbt"}}, "scheduler.kind='pbt'"),
        ({"eval": {"every_s": 1, "every_steps": 5}}, "eval.every_steps"),
        ({"sample": {"num_samples": 2, "lr": {"distribution": "loguniform", "low": 0, "high": 1}}}, "low=0"),
        ({"resources": {"cpus": 0}}, "resources.cpus=0"),
        ({"resources": {"gpus": -1}}, "resources.gpus=-1"),
        ({"max_concurrent": -1}, "max_concurrent=-1"),
        ({"model": {"dropout": 1.5}}, "dropout=1.5"),
    ],
)
def test_bad_spec_documents_raise_one_sentence(changes, fragment):
    from tests.study.conftest import deep_update

    with pytest.raises(StudyError) as info:
        parse_spec(deep_update(TINY_SPEC, changes))
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


LOGUNIFORM_LR = Distribution("loguniform", 1e-4, 1e-2)
CODE_CASES = {
    "name": (lambda: StudySpec(name="a/b"), "name='a/b' is invalid"),
    "storage": (lambda: StudySpec(storage=""), "storage='' is invalid"),
    "checkpoint cadence": (lambda: StudySpec(checkpoint_every_s=-1.0), "checkpoint_every_s=-1.0 is invalid"),
    "concurrency": (lambda: StudySpec(max_concurrent=-1), "max_concurrent=-1 is invalid"),
    "failures": (lambda: StudySpec().replace(max_failures=-2), "max_failures=-2 is invalid"),
    "empty axis": (lambda: StudySpec(axes={"seq_len": ()}), "axes.seq_len is empty"),
    "unknown axis": (lambda: StudySpec(axes={"depth": (1,)}), "axes.depth is not a known axis"),
    "axis label": (lambda: StudySpec(axes={"arch": ("mamba",)}), "axes.arch value 'mamba' is invalid"),
    "repeated seed": (lambda: StudySpec().replace(seeds=(1, 1)), "repeats a seed"),
    "no seeds": (lambda: StudySpec(seeds=()), "seeds=() is invalid"),
    "axis twice": (
        lambda: StudySpec(axes={"lr": (1e-3,)}, sample=SampleSpec(num_samples=2, axes={"lr": LOGUNIFORM_LR})),
        "axes.lr is also a sample axis",
    ),
    "samples without a count": (lambda: SampleSpec(axes={"lr": LOGUNIFORM_LR}), "sample.num_samples=0 is invalid"),
    "bounds": (
        lambda: SampleSpec(num_samples=1, axes={"lr": Distribution("uniform", 1.0, 0.5)}),
        "sample.lr: low=1.0, high=0.5 is invalid",
    ),
    "choice of a bad label": (
        lambda: SampleSpec(num_samples=1, axes={"init": Distribution("choice", values=("xavier",))}),
        "sample.init.values value 'xavier' is invalid",
    ),
}


@pytest.mark.parametrize("case", sorted(CODE_CASES))
def test_specs_built_in_code_or_replaced_are_validated_too(case):
    build, fragment = CODE_CASES[case]
    with pytest.raises(StudyError) as info:
        build()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_yaml_and_the_code_forms_of_a_mistake_say_the_same():
    from tests.study.conftest import deep_update

    messages = []
    for build in (
        lambda: parse_spec(deep_update(TINY_SPEC, {"axes": {"arch": ["standard"], "seq_len": [32, 32]}})),
        lambda: parse_spec(TINY_SPEC).replace(axes={"arch": ("standard",), "seq_len": (32, 32)}),
    ):
        with pytest.raises(StudyError) as info:
            build()
        messages.append(str(info.value))
    assert messages[0] == messages[1] == "axes.seq_len=[32, 32] repeats a value: list each value once."


def _run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


BAD_CLI_CASES = {
    "unknown key": ({"colour": "red"}, "colour is not a known key"),
    "wrong type": ({"train": {"batch_size": "big"}}, "train.batch_size"),
    "empty axis": ({"axes": {"worker_interval": []}}, "axes.worker_interval is empty"),
    "dim not divisible by heads": ({"model": {"n_embd": 30, "n_head": 4}}, "n_head"),
    "odd head dim in an axis": ({"axes": {"n_embd": [36], "n_head": [4]}}, "even head dimension"),
    "budget zero": ({"budget": {"value": 0}}, "budget.value=0"),
    "interval zero": ({"axes": {"worker_interval": [0]}}, "worker_interval=0"),
    "too many cpus": ({"resources": {"cpus": 4096}}, "exceed this machine"),
    "gpus on a cpu machine": ({"resources": {"gpus": 1}}, "exceed this machine"),
    "sequence longer than the data": ({"axes": {"seq_len": [500000]}}, "seq_len"),
    "unknown corpus": ({"data": {"corpus": "wikitext-9000"}}, "wikitext-9000"),
    "unsupported storage scheme": ({"storage": "ftp://host/x"}, "unsupported scheme"),
    "absurd width": ({"model": {"n_embd": 1000000, "n_head": 4}}, "n_embd"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLI_CASES))
def test_bad_specs_fail_before_ray_with_exit_2_and_nothing_written(case, write_spec, tmp_path, capsys):
    changes, fragment = BAD_CLI_CASES[case]
    storage = tmp_path / "results"
    changes = dict(changes)
    path = write_spec(storage=changes.pop("storage", storage), **changes)
    code, err = _run_cli(["run", str(path)], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0]
    assert not storage.exists()
    import ray

    assert not ray.is_initialized()


def test_cli_errors_for_files_and_presets(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    code, err = _run_cli(["run", str(missing)], capsys)
    assert code == 2 and "does not exist" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    code, err = _run_cli(["run", str(broken)], capsys)
    assert code == 2 and "not valid YAML" in err and len(err.strip().splitlines()) == 1
    code, err = _run_cli(["run", "--preset", "nope"], capsys)
    assert code == 2 and "not a known preset" in err
    code, err = _run_cli(["run", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err
    code, err = _run_cli(["resume", str(tmp_path)], capsys)
    assert code == 2 and "not a study directory" in err


def test_unwritable_storage_is_refused(write_spec, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = write_spec(storage=blocker / "sub")
    code, err = _run_cli(["run", str(path)], capsys)
    assert code == 2 and "not a directory" in err


def test_dry_run_prints_trials_and_budget_and_writes_nothing(write_spec, tmp_path, capsys):
    path = write_spec(axes={"arch": ["standard", "worker"], "worker_interval": [2, 4], "seq_len": [32, 64]})
    code = main(["run", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("standard_") == 2 and out.count("worker_k") == 4
    assert "6 trials x 3s" in out
    assert not (tmp_path / "results").exists()


def test_dry_run_shows_each_trials_data_regime_and_max_epochs_refuses_a_trial_above_it(write_spec, tmp_path, capsys):
    sizes = [{"n_embd": 32, "n_head": 2, "batch_size": 4}, {"n_embd": 64, "n_head": 4, "batch_size": 8}]
    path = write_spec(
        budget={"kind": "steps", "value": 1000}, sizes=sizes, axes={"arch": ["standard"], "seq_len": [32]}
    )
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("standard_")]
    # 1000 steps x 4 x 32 = 128,000 tokens over the excerpt's 35,917 training characters: 3.56 passes
    assert len(lines) == 2 and "1.28e+05  3.56" in lines[0] and "2.56e+05  7.13" in lines[1]
    assert "Data: 3.56 to 7.13 passes over the 35,917-token training split" in out
    path = write_spec(
        budget={"kind": "steps", "value": 1000}, sizes=sizes, axes={"arch": ["standard"], "seq_len": [32]}, max_epochs=4
    )
    code, err = _run_cli(["run", str(path)], capsys)
    assert code == 2 and "would make 7.13 passes over the training split (256,000 tokens of 35,917)" in err
    assert "above max_epochs=4" in err and not (tmp_path / "results").exists()


def test_a_dry_run_of_a_named_corpus_downloads_nothing(write_spec, private_cache, capsys):
    """Planning a study on enwik8 needs its size and vocabulary, not its 100 MB: the published size stands in."""
    path = write_spec(data={"corpus": "enwik8"}, budget={"kind": "steps", "value": 100}, axes={"seq_len": [32]})
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "passes over the 90,000,000-token training split" in out
    assert not list(private_cache.glob("enwik8*"))  # the tests run offline: a download would have failed anyway


def test_existing_study_is_not_overwritten(write_spec, tmp_path, capsys):
    path = write_spec()
    study_dir = tmp_path / "results" / "tiny"
    study_dir.mkdir(parents=True)
    (study_dir / "study.yaml").write_text("name: tiny\n")
    code, err = _run_cli(["run", str(path)], capsys)
    assert code == 2 and "already exists" in err and "wt-study resume" in err


def test_a_key_given_twice_is_refused(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text("name: a\nbudget: {kind: steps, value: 5}\nname: b\n")
    code, err = _run_cli(["run", str(path)], capsys)
    assert code == 2 and "the key 'name' is given twice" in err and "line 3" in err


def test_yaml11_exponent_without_sign_is_a_number():
    # PyYAML reads YAML 1.1, where `3.0e12` is a string; a float field takes it as the number it means
    spec = parse_spec(parse_yaml("name: x\nbudget: {kind: flops, value: 3.0e12}\n", "spec"))
    assert spec.budget.value == 3.0e12
    with pytest.raises(StudyError, match="budget.value='3.0e12x' has the wrong type"):
        parse_spec(parse_yaml("name: x\nbudget: {kind: flops, value: 3.0e12x}\n", "spec"))
