"""A `wt-study` driver for the kill tests, run as `python -m tests.reliability.driver run SPEC ...`.

With WT_TEST_SLOW_FLUSH=DIR set, every metrics flush of the Parquet sink is slowed down in a way a slow disk
or object store would: the temporary file is fully written, then a marker `DIR/flushing` appears and the
rename that publishes the file waits WT_TEST_SLOW_FLUSH_S seconds (default 3). A test that SIGKILLs the driver
while the marker exists kills it in the middle of a flush: after the write, before the rename. Nothing else
differs from `wt-study` (the patch is the local branch of wt_base.storage.write_parquet_atomic plus a sleep).
"""

from __future__ import annotations

import os
import posixpath
import sys
import time
import uuid
from pathlib import Path


def _slow_flushes(marker_dir: Path, delay_s: float) -> None:
    import pyarrow.parquet as pq

    import study.results.sink
    from wt_base.layout import METRICS_DIR

    real = study.results.sink.write_parquet_atomic

    def write(table, location, directory, stem):
        if directory != METRICS_DIR or not location.is_local:
            return real(table, location, directory, stem)
        folder = posixpath.join(location.path, directory)
        location.fs.create_dir(folder, recursive=True)
        temp = posixpath.join(folder, f".tmp-{uuid.uuid4().hex}.parquet")
        with location.fs.open_output_stream(temp) as out:
            pq.write_table(table, out)
        (marker_dir / "flushing").write_text(temp)
        time.sleep(delay_s)
        final = posixpath.join(folder, f"{stem}.parquet")
        location.fs.move(temp, final)
        (marker_dir / "flushing").unlink()
        return final

    study.results.sink.write_parquet_atomic = write


def main() -> int:
    marker = os.environ.get("WT_TEST_SLOW_FLUSH")
    if marker:
        _slow_flushes(Path(marker), float(os.environ.get("WT_TEST_SLOW_FLUSH_S", "3")))
    from study.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
