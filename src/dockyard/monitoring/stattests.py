"""The names of the drift tests, their default thresholds and which way they point.

Standard library only, so that what only needs the names (the report renderer, spec
validation) does not import NumPy; :mod:`dockyard.monitoring.drift` computes the tests.
"""

from __future__ import annotations

__all__ = ["ALIASES", "DEFAULT_THRESHOLDS", "DISTANCE_TESTS", "P_VALUE_TESTS", "canonical"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "chisquare_2samp": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
#: Tests whose score is a p-value: drift when it is small.
P_VALUE_TESTS = frozenset({"ks", "chisquare", "chisquare_2samp", "z"})
#: Tests whose score is a distance: drift when it is large.
DISTANCE_TESTS = frozenset({"wasserstein", "jensenshannon", "psi"})
#: Other spellings accepted for a test name.
ALIASES = {
    "js": "jensenshannon",
    "jensen_shannon": "jensenshannon",
    "chi2": "chisquare",
    "chi_square": "chisquare",
    "chi2_contingency": "chisquare_2samp",
    "wasserstein_normed": "wasserstein",
    "z_test": "z",
    "ks_2samp": "ks",
}


def canonical(test: str) -> str | None:
    """The test's canonical name, or None when it names no test."""
    name = ALIASES.get(test.lower(), test.lower())
    return name if name in DEFAULT_THRESHOLDS else None
