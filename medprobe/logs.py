"""Send a job's stdout, stderr and Python logging to its Snakemake log file."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def log_to(path: str | Path | None):
    """Redirect at the file-descriptor level, so output of C extensions and workers lands too."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except BaseException:
            logging.getLogger("medprobe").exception("job failed")
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
