"""The node's HTTP API against its own OpenAPI document, with schemathesis, over real HTTP.

Every operation is fed schema-valid and schema-violating requests; every answer must be a
documented status with a documented content type and body, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from provider_testing import LedgerChain, serving
from schemathesis.config import SchemathesisConfig
from test_provider_api import KEY, MLP_ID, config

from provider import ProviderNode
from tests.openapi_fuzz import FUZZ_SETTINGS


@pytest.fixture(scope="module")
def provider_url(tmp_path_factory: pytest.TempPathFactory, mlp_bundle: Any) -> Iterator[str]:
    card = mlp_bundle.card
    chain = LedgerChain(KEY, model_ids=[(MLP_ID, card.onnx_sha256, card.settings_sha256)])
    node = ProviderNode(config(tmp_path_factory.mktemp("openapi"), mlp_bundle), chain=chain, key=KEY)
    with serving(node) as url:
        yield url


#: A schema-violating body may also pass the size limit (413). A schema-valid ``/jobs`` body is
#: refused when its job was never awarded here (403), is too large (413) or does not fit the
#: model's shape (422: the schema cannot say it); a schema-valid ``/quote`` is always answered 200.
#: A schema-valid ``/rfq/run`` is refused unless it carries this node's own signed quote for the
#: intent, accepted by the requester (400, 403), for a served model (404) and a fitting input (422).
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 16,
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 403, 404, 405, 409, 413, 415, 422]}
        },
        "operations": [
            {
                "include-path": "/jobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 403, 413, 422]}},
            },
            {
                "include-path": "/rfq/run",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", 400, 403, 404, 413, 422]}
                },
            },
        ],
    }
)


@pytest.fixture(scope="module")
def provider_schema(provider_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{provider_url}/openapi.json", config=CONFIG)


schema = schemathesis.pytest.from_fixture("provider_schema")


@schema.parametrize()
@FUZZ_SETTINGS
def test_provider_api_conforms_to_its_openapi(case: Any) -> None:
    case.call_and_validate()
