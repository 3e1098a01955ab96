"""Hypothesis profiles (reproducible in CI, no deadline for symbolic work); corpus on the path."""

import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))  # tests/bptt_corpus.py is test data, not a package

pytest_plugins = ["pytester"]

# Every check draws its own seed unless one is given: the suite's are fixed (like the profile
# below), so that it is reproducible; tests of the drawn seed unset this.
os.environ.setdefault("SYMBPTT_SEED", "0")

# A model file's first-use check is cached on disk: the tests keep theirs out of the home.
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="symbptt-test-cache-"))

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile(os.environ.get("SYMBPTT_HYPOTHESIS_PROFILE", "ci"))
