"""What the roles' schemathesis suites share: one configuration shape and one bounded budget.

Seeded and derandomized, with no deadline, so a run is the same on a loaded 2-core machine.
``TENDER_FUZZ_EXAMPLES=1000 pytest tests/provider/test_provider_openapi.py
tests/solver/test_api_bounds.py`` runs deeper.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

#: examples per operation: 50 in the suite
EXAMPLES = int(os.environ.get("TENDER_FUZZ_EXAMPLES", "50"))

#: the hypothesis settings every OpenAPI test runs under
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz_config(*, refused: list[int], path: str, accepted: list[int | str]) -> SchemathesisConfig:
    """Seed 16; a schema-violating request may be answered with any of ``refused``, a
    schema-valid one to ``path`` with any of ``accepted`` (what the schema cannot express)."""
    return SchemathesisConfig.from_dict(
        {
            "seed": 16,
            "checks": {"negative_data_rejection": {"expected-statuses": refused}},
            "operations": [
                {
                    "include-path": path,
                    "checks": {"positive_data_acceptance": {"expected-statuses": accepted}},
                }
            ],
        }
    )
