"""Offline checks of the shipped Ray cluster launcher configs (`cluster*.yaml` at the repository root).

Schema: the same steps `ray up` takes before it talks to the cloud. In Ray 2.60,
`ray.autoscaler._private.commands._bootstrap_config` runs `prepare_config` (merge with the provider's
`defaults.yaml`, merge setup commands, fill per-type min/max workers), then
`provider.fillout_available_node_types_resources` (AWS: an EC2 API call), then `validate_config`
(jsonschema against `ray/autoscaler/ray-schema.json` plus head-type and min/max-worker checks), then
`provider.bootstrap_config` (creates IAM roles, key pairs, security groups). We call only the two
offline steps, `prepare_config` and `validate_config` (after checking the file as written against the
same schema); the node types therefore carry explicit
`resources`. Our own checks run on the prepared config too, so a default that Ray fills in (its
default head start command binds the dashboard to all interfaces) is caught as well.

AWS node configs are also checked against EC2 RunInstances' request shape from botocore's bundled
service model, as the AWS node provider passes them to `ec2.create_instances`.

These test our files and our own checks (each check is shown to catch a planted mistake); that Ray's schema or
botocore reject bad input is their own projects' business, not tested here.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from packaging.requirements import Requirement

from study.tune.ray_internals import prepare_cluster_config as prepare_config
from study.tune.ray_internals import validate_cluster_config as validate_config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
CLUSTER_FILES = sorted(REPO.glob("cluster*.yaml"))
RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
LOCAL_DASHBOARD_FLAG = "--dashboard-host=127.0.0.1"

# Credentials must never be in a cluster file: nodes get cloud identities (instance profile / service
# account) instead. (?i) where the key name's case varies between tools.
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"(?i)aws_secret_access_key"),
    "AWS session token": re.compile(r"(?i)aws_session_token"),
    "PEM private key": re.compile(r"-----BEGIN"),
    "GCP service-account key": re.compile(r"\bprivate_key(_id)?\b"),
    "GCP credentials in the provider": re.compile(r"\bgcp_credentials\b"),
}
# A `pip install` argument naming Ray: ray, ray[tune], "ray[default,tune]==2.60.0", ray @ URL ...
RAY_REQUIREMENT = re.compile(r"^ray(\[[^\]]*\])?\s*($|[<>=!~@])")


def load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def ray_prepare_and_validate(config: dict) -> dict:
    """Ray's own offline validation; raises jsonschema.ValidationError / ValueError on a bad config.

    The file as written is checked against Ray's schema first, so that a wrong type gets the schema's
    message instead of a TypeError from inside `prepare_config` (which concatenates command lists).
    """
    jsonschema.validate(config, RAY_SCHEMA)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.fixture(params=CLUSTER_FILES, ids=ids(CLUSTER_FILES))
def cluster_file(request) -> Path:
    return request.param


def pyproject_ray_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    (ray,) = [Requirement(d) for d in deps if Requirement(d).name == "ray"]
    (spec,) = ray.specifier
    assert spec.operator == "==", f"pyproject.toml must pin Ray exactly (ray[tune]==X.Y.Z), not {ray}"
    return spec.version


# ----------------------------------------------------------------------------- our own checks
# Each returns a list of problems (empty = fine), so the mutation tests below can prove they bite.


def dashboard_problems(prepared: dict) -> list[str]:
    problems = []
    commands = prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"]
    if "0.0.0.0" in json.dumps(prepared):
        problems.append("0.0.0.0 appears in the prepared config (a service bound to every interface)")
    for cmd in commands:
        for host in re.findall(r"--dashboard-host[= ]+(\S+)", cmd):
            if host != "127.0.0.1":
                problems.append(f"dashboard bound to {host!r} in: {cmd}")
    head_starts = [c for c in prepared["head_start_ray_commands"] if "ray start" in c and "--head" in c]
    if not head_starts or not all(LOCAL_DASHBOARD_FLAG in c for c in head_starts):
        problems.append(f"the head's `ray start --head` command lacks {LOCAL_DASHBOARD_FLAG}")
    return problems


def secret_problems(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def effective_setup_commands(prepared: dict) -> dict[str, list[str]]:
    """Setup commands each node type runs, as Ray applies them (a type's own list overrides)."""
    head_type = prepared["head_node_type"]
    result = {}
    for name, node_type in prepared["available_node_types"].items():
        if name == head_type:
            result[name] = prepared["head_setup_commands"]
        else:
            result[name] = node_type.get("worker_setup_commands", prepared["worker_setup_commands"])
    return result


def ray_pins(commands: list[str]) -> list[str]:
    """Every Ray requirement installed by `pip install` in `commands`, as written."""
    pins = []
    for cmd in commands:
        if "pip install" not in cmd:
            continue
        pins += [tok for tok in shlex.split(cmd) if RAY_REQUIREMENT.match(tok)]
    return pins


def ray_pin_problems(prepared: dict, version: str) -> list[str]:
    problems = []
    for node_type, commands in effective_setup_commands(prepared).items():
        pins = ray_pins(commands)
        if len(pins) != 1:
            problems.append(f"{node_type}: expected one Ray install, found {pins}")
        for pin in pins:
            if not re.fullmatch(r"ray(\[[^\]]*\])?==" + re.escape(version), pin):
                problems.append(f"{node_type}: installs {pin!r}, pyproject.toml pins ray=={version}")
    return problems


def head_resource_problems(prepared: dict) -> list[str]:
    head = prepared["available_node_types"][prepared["head_node_type"]]
    resources = head["resources"]
    if resources.get("CPU") != 0 or resources.get("GPU", 0) != 0:
        return [f"head resources must be {{CPU: 0}} so no trial runs there, got {resources}"]
    return []


# ----------------------------------------------------------------------------- the shipped files pass Ray's schema


def test_both_clouds_are_shipped():
    assert {p.name for p in CLUSTER_FILES} >= {"cluster.yaml", "cluster-gcp.yaml"}


def test_ray_schema_accepts_shipped_file(cluster_file):
    prepared = ray_prepare_and_validate(load(cluster_file))
    assert prepared["head_node_type"] in prepared["available_node_types"]


# ----------------------------------------------------------------------------- our checks


def test_dashboard_only_on_localhost(cluster_file):
    assert "0.0.0.0" not in cluster_file.read_text()
    assert dashboard_problems(ray_prepare_and_validate(load(cluster_file))) == []


@pytest.mark.parametrize(
    "mutate",
    [
        # Without our start commands Ray falls back to its defaults, which bind the dashboard to 0.0.0.0.
        pytest.param(lambda c: c.pop("head_start_ray_commands"), id="ray-default-start-commands"),
        pytest.param(
            lambda c: c.update(head_start_ray_commands=["ray start --head --dashboard-host 0.0.0.0"]),
            id="all-interfaces",
        ),
        pytest.param(lambda c: c.update(head_start_ray_commands=["ray start --head"]), id="flag-missing"),
    ],
)
def test_dashboard_check_catches(cluster_file, mutate):
    config = load(cluster_file)
    mutate(config)
    assert dashboard_problems(ray_prepare_and_validate(config))


def test_head_runs_no_trials(cluster_file):
    prepared = ray_prepare_and_validate(load(cluster_file))
    assert head_resource_problems(prepared) == []
    prepared["available_node_types"][prepared["head_node_type"]]["resources"]["CPU"] = 2
    assert head_resource_problems(prepared)


def test_workers_are_single_gpu_same_type_and_scale_to_zero(cluster_file):
    config = ray_prepare_and_validate(load(cluster_file))
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert workers
    for name, node_type in workers.items():
        # One GPU per node: a timed trial never shares its GPU or its host with another trial.
        assert node_type["resources"].get("GPU") == 1, name
        # Nothing GPU bills while the study is idle.
        assert node_type["min_workers"] == 0, name
        assert 1 <= node_type["max_workers"] <= config["max_workers"], name
    # Seconds budgets are only comparable on one GPU type, so spot and on-demand use the same one.
    kinds = {v["node_config"].get("InstanceType") or v["node_config"].get("machineType") for v in workers.values()}
    assert len(kinds) == 1, f"worker node types mix GPU machine types: {kinds}"
    assert config["idle_timeout_minutes"] > 0


def test_no_secrets(cluster_file):
    assert secret_problems(cluster_file.read_text()) == []


def test_secret_scan_catches_planted_secrets():
    # Built at run time so this file itself holds no string a secret scanner would flag.
    planted = {
        "AWS access key id": "AKIA" + "Q" * 16,
        "AWS secret key": "AWS_SECRET_" + "ACCESS_KEY: x",
        "PEM private key": "-" * 5 + "BEGIN OPENSSH PRIVATE KEY",
        "GCP service-account key": '"private_' + 'key": "x"',
    }
    for name, text in planted.items():
        assert name in secret_problems(f"provider:\n  note: {text}\n"), name
    assert secret_problems("auth:\n  ssh_private_key: ~/.ssh/id_ed25519\n") == []


def test_nodes_reach_the_bucket_through_a_cloud_identity(cluster_file):
    config = load(cluster_file)
    for name, node_type in config["available_node_types"].items():
        node_config = node_type["node_config"]
        if config["provider"]["type"] == "aws":
            assert set(node_config.get("IamInstanceProfile", {})) & {"Arn", "Name"}, name
        else:
            accounts = node_config.get("serviceAccounts", [])
            assert accounts and all(a.get("email") for a in accounts), name


def test_ray_pinned_in_setup_commands_equals_pyproject(cluster_file):
    version = pyproject_ray_version()
    assert ray_pin_problems(ray_prepare_and_validate(load(cluster_file)), version) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: c.pop("setup_commands"), id="ray-default-setup-installs-nightly"),
        pytest.param(lambda c: c.update(setup_commands=['pip install "ray[default,tune]==2.0.0"']), id="other-version"),
        pytest.param(lambda c: c.update(setup_commands=["pip install -U ray[default]"]), id="unpinned"),
        pytest.param(
            lambda c: c["available_node_types"]["gpu"].update(worker_setup_commands=["pip install -e ."]),
            id="node-type-override-skips-ray",
        ),
    ],
)
def test_ray_pin_check_catches(cluster_file, mutate):
    config = load(cluster_file)
    mutate(config)
    assert ray_pin_problems(ray_prepare_and_validate(config), pyproject_ray_version())


def test_file_mounts_exist_locally(cluster_file):
    # `ray up` asserts every local path exists; paths are relative to where it runs: the repo root.
    for remote, local in load(cluster_file).get("file_mounts", {}).items():
        assert (REPO / Path(local).expanduser()).exists(), f"file_mounts {remote}: {local} does not exist"


def test_gcp_gpu_nodes_terminate_on_host_maintenance():
    # Compute Engine refuses GPU VMs that would live-migrate.
    config = load(REPO / "cluster-gcp.yaml")
    for name, node_type in config["available_node_types"].items():
        if node_type["resources"].get("GPU"):
            assert node_type["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE", name


# ----------------------------------------------------------------------------- AWS request shape


def run_instances_problems(node_config: dict) -> str:
    """botocore's report for `node_config` as an EC2 RunInstances request ('' = valid)."""
    session = pytest.importorskip("botocore.session")
    from botocore.validate import ParamValidator

    shape = session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape
    request = copy.deepcopy(node_config)
    request.pop("SubnetIds", None)  # Ray's own key: it picks one SubnetId from the list
    request.update(MinCount=1, MaxCount=1)  # added by Ray's AWS node provider
    return ParamValidator().validate(request, shape).generate_report()


def test_aws_node_configs_are_valid_run_instances_requests():
    for name, node_type in load(REPO / "cluster.yaml")["available_node_types"].items():
        assert run_instances_problems(node_type["node_config"]) == "", name
