"""The node's HTTP API against its own OpenAPI document, with schemathesis, over real HTTP.

Every operation is fed schema-valid and schema-violating requests; every answer must be a
documented status with a documented content type and body, never a 5xx.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from provider_testing import LedgerGateway, serving
from schemathesis.config import SchemathesisConfig
from test_provider_api import KEY, MLP_ID, config

from provider import ProviderNode


@pytest.fixture(scope="module")
def provider_url(tmp_path_factory: pytest.TempPathFactory, mlp_bundle: Any) -> Iterator[str]:
    card = mlp_bundle.card
    gateway = LedgerGateway(KEY, model_ids=[(MLP_ID, card.onnx_sha256, card.settings_sha256)])
    node = ProviderNode(config(tmp_path_factory.mktemp("openapi"), mlp_bundle), gateway=gateway, key=KEY)
    with serving(node) as url:
        yield url


#: A schema-violating body may also pass the size limit (413). A schema-valid ``/jobs`` body is
#: refused when its job was never awarded here (403), is too large (413) or does not fit the
#: model's shape (422: the schema cannot say it); a schema-valid ``/quote`` is always answered 200.
CONFIG = SchemathesisConfig.from_dict({
    "seed": 16,
    "checks": {"negative_data_rejection": {"expected-statuses": [400, 403, 404, 405, 409, 413, 415, 422]}},
    "operations": [{"include-path": "/jobs", "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", 403, 413, 422]}}}],
})  # fmt: skip


@pytest.fixture(scope="module")
def provider_schema(provider_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{provider_url}/openapi.json", config=CONFIG)


#: examples per operation: 50 in the suite (seeded, derandomized, no deadline); raise it for a
#: deeper run, e.g. ``TENDER_FUZZ_EXAMPLES=1000 pytest tests/provider/test_provider_openapi.py``
EXAMPLES = int(os.environ.get("TENDER_FUZZ_EXAMPLES", "50"))

schema = schemathesis.pytest.from_fixture("provider_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_provider_api_conforms_to_its_openapi(case: Any) -> None:
    case.call_and_validate()
