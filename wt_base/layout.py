"""The file names of a study directory `<storage>/<name>/` (the study's layout, shared by writer and readers):

study.yaml    the resolved spec (resume reads it; a different spec is refused)
driver.lease  while a driver runs: who it is (wt_base.lease.LEASE_FILE); a second driver is refused
results/      the Parquet results (wt_base.schema): metrics/*.parquet and trials/*.parquet
tune/         Ray Tune's experiment state and the trials' checkpoints (each a folder holding STATE_FILE)
"""

SPEC_FILE = "study.yaml"
RESULTS_DIR = "results"
METRICS_DIR = "metrics"  # under RESULTS_DIR
TRIALS_DIR = "trials"  # under RESULTS_DIR
TUNE_DIR = "tune"
STATE_FILE = "state.pt"  # a training state in a checkpoint folder (study.train.state), also `wt-study train`'s
