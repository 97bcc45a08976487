import os
import tempfile

from hypothesis import HealthCheck, settings

# Kernels compiled by the tests go to a fresh cache (never the user's), and numba
# compiles at -O0 there: the tests check results, not speed (the opt level is part
# of the kernel cache key, so these kernels never mix with optimised ones).
os.environ.setdefault("FUNGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="fungrad-test-cache-"))
os.environ.setdefault("NUMBA_OPT", "0")

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, print_blob=True, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
