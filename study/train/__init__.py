"""The Ray-free training side: the budgeted loop (`loop.py`), its budget (`budget.py`), checkpoint state
(`state.py`), the corpus and batches (`data.py`) and the throughput bench (`bench.py`)."""
