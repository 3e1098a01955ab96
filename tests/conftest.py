"""Hypothesis profiles: reproducible in CI (derandomized), no deadline for symbolic work."""

import os

from hypothesis import HealthCheck, settings

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
