"""A property run of the JSON API against its own OpenAPI document: no 5xx, responses conform."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from dacapo_store.web import create_app  # noqa: E402

from .conftest import demo_stores  # noqa: E402


@pytest.fixture(scope="module")
def api(demo_dir, tmp_path_factory):
    stores = demo_stores("files", demo_dir, tmp_path_factory.mktemp("fuzz"))
    app = create_app(stores.configs, stores.weights, recheck=0)
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


OPERATIONS = [
    "GET /api/v1/runs",
    "GET /api/v1/runs/{name}",
    "GET /api/v1/runs/{name}/scores",
    "GET /api/v1/runs/{name}/checkpoint",
    "GET /api/v1/compare",
    "GET /api/v1/leaderboard",
    "GET /api/v1/configs/{kind}",
    "GET /api/v1/configs/{kind}/{name}",
    "GET /healthz",
]


# schemathesis.pytest.from_fixture does not run under pytest 9, so each operation's strategy is
# driven by hypothesis directly; the checks are schemathesis' own.
@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_api_conforms_to_its_openapi_document(api, operation):
    found = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in api.get_all_operations())}
    assert set(found) == set(OPERATIONS)

    @given(case=found[operation].as_strategy())
    @settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        assert response.status_code < 500, (case.path, case.query, response.text)
        # Every check but "schema-valid data is accepted": a name's rule ("printable", in
        # Python's sense of unicode) is wider than a JSON-schema pattern can say, so the schema
        # admits some names the API refuses with a 400, as documented.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()
