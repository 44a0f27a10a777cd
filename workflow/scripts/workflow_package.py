"""Make `import medprobe` resolve to the package beside this workflow.

Imported first by every script: the per-rule conda environments (envs/*.yaml) hold only
third-party dependencies, and the code that runs is always this checkout's, which is also the
code whose version the provenance records.
"""

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
