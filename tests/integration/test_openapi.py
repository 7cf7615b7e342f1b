"""The OpenAPI document says what the API does: the committed docs/openapi.yaml is what the app serves; every `/api`
operation takes the bearer token; errors are the real 400 `ErrorDocument` (no 422); times are `date-time`;
statuses are core's enums; examples and real answers validate against the documented schemas; operation ids read
well. And the filters it documents work: `until` on releases, `POST /api/reprocess`. `/docs` serves every asset it
references from the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import yaml
from fastapi import APIRouter, Depends, FastAPI, Query
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ghingest.app.api_models import DateTime
from ghingest.app.auth import require_reader
from ghingest.app.openapi import DocumentedRoute, build_openapi
from ghingest.app.openapi import operation_id as camel_case_id
from ghingest.app.runtime import Runtime
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.reconcile import GapKind, GapState
from ghingest.core.releases import ReleaseState
from ghingest.core.states import DeliveryStatus
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, settings_in, signed, wait_until

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)+")
MAY_OR_MAY_NOT = "2024-05-10T00:00:00Z"  # between the two seeded releases


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """One server for the module, with two releases published three weeks apart."""
    settings = settings_in(tmp_path_factory.mktemp("openapi"))
    with ThreadedServer(Runtime.build(settings)) as running, httpx.Client(base_url=running.url, timeout=10) as client:
        for number, published in ((1, "2024-05-01T10:00:00Z"), (2, "2024-05-20T10:00:00Z")):
            payload = release(release_id=number, tag=f"v{number}.0.0", published_at=published)
            assert post_webhook(client, signed(payload, delivery_id=f"seed-{number}")).status_code == 202
        wait_until(lambda: len(client.get("/api/releases", headers=BEARER).json()["items"]) == 2)
        yield running


@pytest.fixture(scope="module")
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=BEARER, timeout=10) as api:
        yield api


@pytest.fixture(scope="module")
def document(server: ThreadedServer) -> dict[str, Any]:
    served: dict[str, Any] = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    return served


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return next(op for _, _, op in _operations(document) if op["operationId"] == operation_id)


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of `schema` whose `#/components/...` references resolve in `document`, checking formats."""
    return Draft202012Validator(
        {**schema, "components": document["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _answer_schema(document: dict[str, Any], operation_id: str, status: str) -> dict[str, Any]:
    schema: dict[str, Any] = _operation(document, operation_id)["responses"][status]["content"]["application/json"][
        "schema"
    ]
    return schema


def test_served_document_matches_the_committed_one(document: dict[str, Any]) -> None:
    committed = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert document == committed, "docs/openapi.yaml is stale: run `make openapi` and commit the result"


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_webhook_route_is_documented_with_its_headers_and_statuses(document: dict[str, Any]) -> None:
    operation = document["paths"]["/webhooks/github"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"} <= headers
    assert {"200", "202", "400", "401", "413", "415", "503"} <= set(operation["responses"])


def test_every_api_operation_takes_the_bearer_token_and_documents_401(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    api = [(path, method, op) for path, method, op in _operations(document) if path.startswith("/api/")]
    assert len(api) >= 12
    for path, method, operation in api:
        assert {"bearer": []} in operation["security"], (method, path)
        assert "401" in operation["responses"], (method, path)


def test_writes_take_a_bearer_token_only_and_the_operator_role(document: dict[str, Any]) -> None:
    writes = [op for path, method, op in _operations(document) if path.startswith("/api/") and method == "post"]
    assert {op["operationId"] for op in writes} == {
        "replayForwards",
        "reprocessDeliveries",
        "pauseDestination",
        "resumeDestination",
        "sendTestDelivery",
    }
    for operation in writes:
        assert operation["security"] == [{"bearer": []}]
        assert {"400", "401", "403", "413"} <= set(operation["responses"])
    reads = [op for path, method, op in _operations(document) if path.startswith("/api/") and method == "get"]
    assert all(op["security"] == [{"bearer": []}, {"session": []}] for op in reads)


def test_operations_outside_the_api_say_they_need_no_token(document: dict[str, Any]) -> None:
    outside = {path: op for path, _, op in _operations(document) if not path.startswith("/api/")}
    assert set(outside) == {"/webhooks/github", "/healthz", "/readyz", "/metrics"}
    assert all(op["security"] == [] for op in outside.values())


def test_no_422_anywhere_and_every_operation_with_input_documents_the_400_error_document(
    document: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    for path, method, operation in _operations(document):
        assert "422" not in operation["responses"], (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            answer = operation["responses"]["400"]["content"]["application/json"]
            assert answer["schema"] == {"$ref": "#/components/schemas/ErrorDocument"}, (method, path)


@pytest.mark.parametrize(
    ("operation_id", "status", "path", "params", "headers"),
    [
        ("listReleases", "400", "/api/releases", {"limit": "0"}, BEARER),
        ("listReleases", "400", "/api/releases", {"until": "yesterday"}, BEARER),
        ("listReleases", "400", "/api/releases", {"cursor": "!"}, BEARER),
        ("listEvents", "400", "/api/events", {"status": "received"}, BEARER),
        ("listReleases", "401", "/api/releases", {}, {}),
        ("getDelivery", "404", "/api/deliveries/no-such-delivery", {}, BEARER),
    ],
)
def test_real_error_answers_match_the_documented_schema(
    server: ThreadedServer,
    document: dict[str, Any],
    operation_id: str,
    status: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> None:
    response = httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=10)
    assert str(response.status_code) == status, response.text
    _validator(document, _answer_schema(document, operation_id, status)).validate(response.json())


def test_real_answers_match_their_documented_schemas_and_times_are_date_time(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers, "no date-time checker: the test checks less"
    calls = {
        "listReleases": "/api/releases",
        "getRelease": "/api/releases/1",
        "listEvents": "/api/events",
        "getDelivery": "/api/deliveries/seed-1?raw=1",
        "listDeliveryForwards": "/api/deliveries/seed-1/forwards",
        "listDestinations": "/api/destinations",
        "listDeadLetters": "/api/dead-letters",
        "listGaps": "/api/reconcile/gaps",
        "listHookScans": "/api/reconcile/hooks",
        "listTrackedRepositories": "/api/tracked-repositories",
    }
    for operation_id, path in calls.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        _validator(document, _answer_schema(document, operation_id, "200")).validate(response.json())
    not_a_time = {"type": "string", "format": "date-time"}
    assert not _validator(document, not_a_time).is_valid("2024-05-20 at ten")


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        ("Release", ["created_at", "published_at", "first_seen_at", "updated_at"]),
        ("HistoryItem", ["received_at"]),
        ("Event", ["received_at", "processed_at"]),
        ("Delivery", ["received_at", "processed_at"]),
        ("DeliverySighting", ["first_at", "last_at"]),
        ("Forward", ["created_at", "next_attempt_at", "completed_at"]),
        ("Attempt", ["started_at"]),
        ("DestinationState", ["last_attempt_at", "last_success_at", "last_error_at"]),
        ("GapDocument", ["delivered_at", "found_at", "last_requested_at", "arrived_at"]),
        ("HookScanDocument", ["last_run_at", "last_ok_at"]),
        ("TrackedRepositoryDocument", ["added_at", "last_polled_at", "last_changed_at", "next_poll_at"]),
        ("ReplayRequest", ["since", "until"]),
        ("ReprocessRequest", ["since"]),
    ],
)
def test_timestamps_are_date_time(document: dict[str, Any], schema: str, fields: list[str]) -> None:
    properties = _schema(document, schema)["properties"]
    for field in fields:
        kinds = properties[field].get("anyOf", [properties[field]])
        assert [k for k in kinds if k.get("type") == "string"] == [{**kinds[0], "format": "date-time"}], field


def test_time_filters_are_date_time(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in _operation(document, "listReleases")["parameters"]}
    for name in ("since", "until"):
        assert parameters[name]["schema"]["anyOf"][0]["format"] == "date-time"


@pytest.mark.parametrize(
    ("schema", "field", "values"),
    [
        ("Release", "state", [s.value for s in ReleaseState]),
        ("Event", "status", [DeliveryStatus.PROCESSED.value, DeliveryStatus.FAILED.value]),
        ("Delivery", "status", [s.value for s in DeliveryStatus]),
        ("Forward", "status", [s.value for s in ForwardStatus]),
        ("Attempt", "outcome", ["delivered", "retry", "dead"]),
        ("GapDocument", "state", [s.value for s in GapState]),
        ("GapDocument", "kind", [s.value for s in GapKind]),
    ],
)
def test_status_state_and_outcome_fields_are_enums(
    document: dict[str, Any], schema: str, field: str, values: list[str]
) -> None:
    prop = _schema(document, schema)["properties"][field]
    if "$ref" in prop:
        prop = _schema(document, prop["$ref"].rsplit("/", 1)[1])
    assert prop["enum"] == values


def test_operation_ids_are_unique_and_camel_case(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if not CAMEL_CASE.fullmatch(i)] == []
    assert {"listReleases", "getDelivery", "replayForwards", "reprocessDeliveries", "receiveWebhook"} <= set(ids)


def test_every_operation_has_a_tag_with_a_description(document: dict[str, Any]) -> None:
    described = {tag["name"] for tag in document["tags"] if tag.get("description")}
    for path, method, operation in _operations(document):
        assert operation["tags"], (method, path)
        assert set(operation["tags"]) <= described, (method, path)
        assert operation.get("summary"), (method, path)


def test_every_example_validates_against_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for schema in document["components"]["schemas"].values():
        for example in schema.get("examples", []):
            _validator(document, schema).validate(example)
            checked += 1
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            for example in parameter["schema"].get("examples", []):
                _validator(document, parameter["schema"]).validate(example)
                checked += 1
    assert checked >= 12
    for main in ("Release", "Event", "Delivery", "Forward", "ReplayRequest", "ReprocessRequest", "ErrorDocument"):
        assert _schema(document, main)["examples"], main


def test_a_route_added_later_is_documented_by_the_same_rules() -> None:
    """A typed, described query parameter on a new `/api` route (the event-log filters, say) needs nothing more."""
    router = APIRouter(prefix="/api", dependencies=[Depends(require_reader)], route_class=DocumentedRoute)

    @router.get("/things", summary="List things")
    async def list_things(
        since: Annotated[DateTime | None, Query(description="Received at or after.")] = None,
        status: Annotated[DeliveryStatus | None, Query(description="Only these.")] = None,
    ) -> dict[str, str]:
        return {}

    app = FastAPI(generate_unique_id_function=camel_case_id)
    app.include_router(router)
    operation = build_openapi(app)["paths"]["/api/things"]["get"]
    assert operation["operationId"] == "listThings"
    assert operation["security"] == [{"bearer": []}, {"session": []}]
    assert set(operation["responses"]) == {"200", "400", "401", "503"}
    assert operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorDocument")
    since, status = operation["parameters"]
    assert since["description"] == "Received at or after."
    assert since["schema"]["anyOf"][0]["format"] == "date-time"
    assert status["schema"]["anyOf"][0] == {"$ref": "#/components/schemas/DeliveryStatus"}


def test_until_on_releases_narrows_the_list(client: httpx.Client) -> None:
    def tags(**params: str) -> list[str]:
        response = client.get("/api/releases", params=params)
        assert response.status_code == 200, response.text
        return [item["tag"] for item in response.json()["items"]]

    assert tags() == ["v2.0.0", "v1.0.0"]
    assert tags(until=MAY_OR_MAY_NOT) == ["v1.0.0"]
    assert tags(since=MAY_OR_MAY_NOT) == ["v2.0.0"]
    assert tags(since="2024-05-01T10:00:00Z", until="2024-05-20T10:00:00Z") == ["v1.0.0"]  # until is exclusive
    assert tags(until="2024-05-10T02:00:00+02:00") == ["v1.0.0"]  # compared in UTC
    assert tags(until=MAY_OR_MAY_NOT, state="published") == ["v1.0.0"]  # an enum filter reaches the store as text
    assert tags(state="deleted") == []


def test_reprocess_through_the_api(server: ThreadedServer, client: httpx.Client, document: dict[str, Any]) -> None:
    before = client.get("/api/deliveries/seed-1").json()
    answer = client.post("/api/reprocess", json={"delivery_id": "seed-1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 1}
    wait_until(lambda: client.get("/api/deliveries/seed-1").json()["processed_at"] != before["processed_at"])
    assert client.get("/api/deliveries/seed-1").json()["status"] == "processed"

    assert client.post("/api/reprocess", json={"since": "2099-01-01T00:00:00Z"}).json() == {"count": 0}
    refused = [
        client.post("/api/reprocess", json={}),
        client.post("/api/reprocess", json={"since": "yesterday"}),
        client.post("/api/reprocess", json={"delivery": "seed-1"}),
    ]
    schema = _answer_schema(document, "reprocessDeliveries", "400")
    for response in refused:
        assert response.status_code == 400, response.text
        _validator(document, schema).validate(response.json())
    anonymous = httpx.post(f"{server.url}/api/reprocess", json={"delivery_id": "seed-1"}, timeout=10)
    assert anonymous.status_code == 401


_REFERENCE = re.compile(r'(?:src|href)="([^"]+)"')


def test_docs_page_and_every_asset_it_references_are_served_by_the_app(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script: the CSP would refuse it
        references = _REFERENCE.findall(page.text)
        assets = [r for r in references if r.startswith("/docs/assets/")]
        assert len(assets) == 4, references
        assert all(r.startswith(("/", "data:")) for r in references), references  # nothing outside the app
        types = {}
        for reference in assets:
            response = anonymous.get(reference)
            assert response.status_code == 200, reference
            types[reference.split("?")[0].rsplit(".", 1)[1]] = response.headers["content-type"].split(";")[0]
        assert types == {"css": "text/css", "js": "text/javascript"}
        assert anonymous.get("/docs/assets/swagger-ui/LICENSE").status_code == 200
