"""The Ray-free samplers of a search (study.tune.search_state): what a unit runs next, from what it has run.

A sampler has five methods. `propose(sample_id, samples)` gives the next setting (`samples`: the unit's
settings so far, setting key -> its sample, in proposal order, each with `setting`, `told`, `value` and
`kind`); `more(samples)` says whether it has a setting to propose now (False: wait for results, or done: the
unit is decided once every result is in); `stopped(samples)` says why it has no more (a bracket's reason, or
None); `tell(sample_id, value, kind)` and `tell_replayed(setting, value, kind)` give it a setting's result
(kind complete, fail or pruned), during the run or rebuilt on resume.
Optuna's TPE, the one sampler that needs Ray Tune, is in study.tune.searcher.
"""

from __future__ import annotations

from study.config.search_space import random_settings, setting_key
from wt_base import bracket


class CountedSampler:
    """The part every fixed-count sampler shares: `samples` settings per unit, whatever their results."""

    def __init__(self, samples: int):
        self._samples = samples

    def more(self, samples: dict) -> bool:
        return len(samples) < self._samples

    def stopped(self, samples: dict) -> str | None:
        return None  # a fixed count has no reason to give

    def tell(self, sample_id: str, value: float | None, kind: str) -> None:
        pass

    def tell_replayed(self, setting: dict, value: float | None, kind: str) -> None:
        pass


class RandomSampler(CountedSampler):
    """search.algorithm random: the spec's fixed list of draws (study.config.search_space.random_settings), each
    proposed once in order; results change nothing."""

    def __init__(self, spec):
        self._settings = random_settings(spec)
        super().__init__(len(self._settings))

    def propose(self, sample_id: str, samples: dict) -> dict:
        for setting in self._settings:
            if setting_key(setting) not in samples:
                return setting
        raise AssertionError("a unit asks for at most search.samples settings")


class ListeningSampler(CountedSampler):
    """A fixed-count search rebuilt for looking only (status, resume's checks): it takes results and proposes
    nothing."""

    def propose(self, sample_id: str, samples: dict) -> dict:
        raise RuntimeError("a search rebuilt for looking proposes no setting")


class BracketSampler:
    """search.algorithm bracket: the walk of wt_base.bracket over the spec's one bracketed setting. It keeps no
    state of its own: each call replays the walk from the unit's samples, so a rebuilt search (resume, status)
    walks exactly as the one that was stopped."""

    def __init__(self, spec):
        self._axis, self._walk = spec.search.bracket
        self._high = self._walk.highest_allowed(self._axis)

    def step(self, samples: dict) -> bracket.BracketStep:
        told = {s.setting[self._axis]: s.value for s in samples.values() if s.told}
        pending = {s.setting[self._axis] for s in samples.values() if not s.told}
        walk = self._walk
        return bracket.next_step(told, pending, walk.start, walk.step, walk.low, self._high, walk.cap, walk.refine)

    def more(self, samples: dict) -> bool:
        return bool(self.step(samples).points)

    def propose(self, sample_id: str, samples: dict) -> dict:
        return {self._axis: self.step(samples).points[0]}

    def stopped(self, samples: dict) -> str | None:
        """Why the walk ended (wt_base.bracket.STOPS), or None while it goes on."""
        return self.step(samples).stop

    def tell(self, sample_id: str, value: float | None, kind: str) -> None:
        pass  # the samples hold every result

    def tell_replayed(self, setting: dict, value: float | None, kind: str) -> None:
        pass


def looking_sampler(spec):
    """The sampler of a search rebuilt from its rows only: a bracket's own walk (it decides when a unit is done),
    else one that counts."""
    return BracketSampler(spec) if spec.search.bracket else ListeningSampler(spec.search.samples)
