"""The one device resolver shared by `wt-study train` (train.device) and `wt-study bench` (--device)."""

from __future__ import annotations

import pytest
import torch

from study.train.device import resolve_device
from wt_base.errors import StudyError


def test_auto_and_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "mps", ""])
def test_unknown_names_are_one_sentence_naming_the_setting(name):
    with pytest.raises(StudyError, match=rf"^--device={name!r} is invalid: expected auto, cpu, cuda or cuda:N\.$"):
        resolve_device(name, "--device")


def test_cuda_that_is_not_there_is_refused():
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(StudyError, match=r"^train\.device='cuda:99' is invalid here"):
        resolve_device("cuda:99")
    if visible == 0:
        with pytest.raises(StudyError, match="no CUDA device is visible"):
            resolve_device("cuda")
