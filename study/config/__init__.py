"""Configuration: the run config of one training run (`run.py`), study specs (`spec.py`), their expansion into
trials (`space.py`) and the shipped presets (`presets/*.yaml`)."""
