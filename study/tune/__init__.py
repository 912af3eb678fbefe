"""The Ray boundary: the trainable, the driver-side callbacks, the trial rows and the runner (plan, checks, Tuner)."""
