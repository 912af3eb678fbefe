"""A study whose Tune experiment state is missing or cut short (a full disk, a crash mid-write) is rebuilt, not
refused: Tune's state is a cache of what the study's own files already hold.

The trial list is the study's trial rows (a grid's stored trials; a search replays them), so a fresh Tuner runs
the same trials under the same ids: a trial whose row says it finished is ended unrun (study.tune.schedulers
.StudyFIFO), and an unfinished one starts from the newest of its checkpoints that loads (`checkpoints`), found in
its own folder `tune/<trial_id>/` by the trainable (study.tune.trainable), so its used budget carries on. The
damaged state files are set aside (renamed `*.damaged-<time>`), never deleted.

Tune's state files: tuner.pkl, experiment_state-*.json, basic-variant-state-*.json (a grid) and
search_gen_state-*.json (a search); their names and formats are study.tune.ray_internals', whose tests fail if a
Ray release changes them.
"""

from __future__ import annotations

import json
import posixpath
import time

import pyarrow.fs as pafs

from study.tune.ray_internals import STATE_PREFIXES as STATE_PATTERNS
from study.tune.ray_internals import TUNER_PICKLE as PICKLED
from study.tune.ray_internals import state_loader
from wt_base.layout import TUNE_DIR
from wt_base.storage import Location

REBUILT_KEY = "rebuilt_from_study"  # in a rebuilt study's Tune config: the study URI its trials resume from
CHECKPOINT_PREFIX = "checkpoint_"


def _files(tune: Location) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(tune.path, allow_not_found=True)
    return [f for f in tune.fs.get_file_info(selector) if f.type == pafs.FileType.File]


def damaged_state(tune: Location) -> str | None:
    """Why Tune's experiment state under `tune` cannot be restored (a file missing, empty or cut short), or None
    when it reads. Only the newest file of each kind counts: it is the one Tune restores from."""
    files = {f.base_name: f for f in _files(tune)}
    if PICKLED not in files:
        return f"no {PICKLED}"
    newest = {PICKLED: PICKLED}
    for name in sorted(files):
        for pattern in STATE_PATTERNS:
            if name.startswith(pattern) and name.endswith(".json"):
                newest[pattern] = name
    if "experiment_state-" not in newest:
        return "no experiment_state-*.json"
    for kind, name in newest.items():
        load = state_loader(kind)
        try:
            with tune.fs.open_input_stream(posixpath.join(tune.path, name)) as f:
                load(f.read())
        except Exception as exc:  # any way a cut file fails to load
            return f"{name} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})"
    return None


def set_aside(tune: Location) -> list[str]:
    """Rename Tune's state files to `<name>.damaged-<time>` (kept for a post-mortem); returns the new names."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for info in _files(tune):
        name = info.base_name
        if name == PICKLED or any(name.startswith(p) for p in STATE_PATTERNS):
            target = f"{info.path}.damaged-{stamp}"
            tune.fs.move(info.path, target)
            moved.append(posixpath.basename(target))
    return moved


def checkpoints(study: Location, trial_id: str, meta_file: str) -> list[str]:
    """The trial's checkpoint folders under `tune/<trial_id>/`, best first: the highest step their `meta_file`
    records (a rebuilt trial's new checkpoints reuse low indexes beside older ones), then the highest index."""
    folder = study.join(TUNE_DIR, trial_id)
    selector = pafs.FileSelector(folder.path, allow_not_found=True)
    found = []
    for info in study.fs.get_file_info(selector):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith(CHECKPOINT_PREFIX):
            continue
        try:
            with study.fs.open_input_stream(posixpath.join(info.path, meta_file)) as f:
                step = int(json.loads(f.read()).get("step", -1))
        except (OSError, ValueError):
            continue  # no meta: an incomplete checkpoint
        found.append((step, info.base_name, info.path))
    return [path for _, _, path in sorted(found, reverse=True)]
