"""HiBob's slice of the API in the emulator: the generated company, audiences,
people search, named lists, time off, tasks, rate limits and error shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.emulator import Flow, hibob, running

from connector_core.emulator import EmulatorSpec, RunningEmulator
from connector_hibob.emulator import EMPLOYEE_COUNT, SEED, make_company

ALL = "employee_data:read company.metadata:read timeoff:read tasks:write"
#: A fixed clock: rate-limit windows never roll over in the middle of a test.
NOON = 1_800_000_000.0 - 1_800_000_000.0 % 60 + 30


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with running(clock=lambda: NOON) as emulator:
        yield emulator


def test_the_plugin_provides_the_emulator_spec() -> None:
    spec = hibob().emulator_spec("hibob")
    assert isinstance(spec, EmulatorSpec)
    assert spec.identity_field == "companyId"
    assert spec.rotate_refresh_tokens and spec.single_installation and spec.all_or_nothing_consent
    assert [a.key for a in spec.audiences] == ["all", "departments"]
    assert spec.error_body(404, "not_found", "gone") == {"key": "not_found", "error": "gone"}
    search = spec.resource("POST /people/search")
    assert search is not None and search.rate_limit_per_minute == 50
    tasks = spec.resource("/tasks")
    assert tasks is not None and tasks.scopes == ("tasks:write",)


def test_the_generated_company_is_deterministic() -> None:
    first, again, other = make_company(SEED), make_company(SEED), make_company(SEED + 1)
    assert first == again
    assert first.id != other.id
    employees = first.data["employees"]
    assert len(employees) == EMPLOYEE_COUNT
    assert len({e["id"] for e in employees}) == EMPLOYEE_COUNT
    assert len({e["email"] for e in employees}) == EMPLOYEE_COUNT
    assert all(e["email"].endswith(".example") for e in employees)
    assert sum(e["internal"]["status"] == "Inactive" for e in employees) == 3
    assert {e["work"]["department"] for e in employees} == set(first.data["departments"])


def test_people_search_fields_filters_and_inactive(flow: Flow) -> None:
    token = flow.connect(ALL)["access_token"]
    active = flow.search(token, fields=["root.id", "root.email", "work.department"]).json()["employees"]
    assert len(active) == EMPLOYEE_COUNT - 3
    assert set(active[0]) == {"id", "email", "work"}
    assert set(active[0]["work"]) == {"department"}
    everyone = flow.search(token, fields=["root.id"], showInactive=True).json()["employees"]
    assert len(everyone) == EMPLOYEE_COUNT
    full = flow.search(token, showInactive=False, fields=[]).json()["employees"][0]
    assert {"id", "firstName", "surname", "email", "work", "internal"} <= set(full)
    email = active[3]["email"]
    one = flow.search(
        token, fields=["root.email"], filters=[{"fieldPath": "root.email", "operator": "equals", "values": [email]}]
    )
    assert one.json() == {"employees": [{"email": email}]}


@pytest.mark.parametrize(
    "body",
    [
        {"fields": ["root.nope"]},
        {"fields": "root.id"},
        {"showInactive": "yes"},
        {"filters": [{"fieldPath": "root.id", "operator": "contains", "values": ["1"]}]},
        [1, 2],
    ],
)
def test_people_search_rejects_bad_bodies_in_hibobs_error_shape(flow: Flow, body: object) -> None:
    token = flow.connect()["access_token"]
    response = flow.api("POST", "/people/search", token, json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"key", "error"}


def test_people_search_rejects_a_body_that_is_not_json(flow: Flow) -> None:
    token = flow.connect()["access_token"]
    response = flow.api("POST", "/people/search", token, content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.json() == {"key": "bad_request", "error": "The request body is not valid JSON."}


def test_the_audience_limits_what_the_app_sees(emu: RunningEmulator, flow: Flow) -> None:
    token = flow.connect(ALL, audience="departments=Engineering,People")["access_token"]
    found = flow.search(token, fields=["work.department"], showInactive=True).json()["employees"]
    assert {e["work"]["department"] for e in found} == {"Engineering", "People"}
    employees = emu.company().data["employees"]
    inside = next(e for e in employees if e["work"]["department"] == "Engineering")
    outside = next(e for e in employees if e["work"]["department"] == "Sales")
    assert flow.api("GET", f"/people/{inside['id']}", token).json()["email"] == inside["email"]
    assert flow.api("GET", f"/people/{inside['email']}", token).status_code == 200
    assert flow.api("GET", "/people/" + inside["email"].replace("@", "%40"), token).status_code == 200
    hidden = flow.api("GET", f"/people/{outside['id']}", token)
    assert hidden.status_code == 404
    assert hidden.json()["key"] == "not_found"
    visible = {e["id"] for e in employees if e["work"]["department"] in ("Engineering", "People")}
    tasks = flow.api("GET", "/tasks", token).json()["tasks"]
    assert all(t["requestedFor"]["id"] in visible for t in tasks)


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ("everyone", "unknown audience 'everyone'"),
        ("departments", "choose at least one of"),
        ("departments=Legal", "unknown selected departments option(s) Legal"),
    ],
)
def test_bad_scripted_audiences(flow: Flow, audience: str, message: str) -> None:
    response = flow.authorize(audience=audience)
    assert response.status_code == 400
    assert message in response.json()["error_description"]


def test_named_lists(emu: RunningEmulator, flow: Flow) -> None:
    token = flow.connect("company.metadata:read employee_data:read")["access_token"]
    lists = flow.api("GET", "/company/named-lists", token).json()
    assert set(lists) == {"department", "site", "title"}
    values = [v["value"] for v in lists["department"]["values"]]
    assert values == list(emu.company().data["departments"])
    one = flow.api("GET", "/company/named-lists/site", token).json()
    assert one["name"] == "site"
    assert flow.api("GET", "/company/named-lists/nope", token).status_code == 404


def test_time_off_request_changes(flow: Flow) -> None:
    token = flow.connect("timeoff:read employee_data:read")["access_token"]
    everything = flow.api("GET", "/timeoff/requests/changes", token, params={"since": "2000-01-01T00:00:00Z"})
    changes = everything.json()["changes"]
    assert len(changes) == 15
    middle = changes[7]["changedAt"]
    later = flow.api("GET", "/timeoff/requests/changes", token, params={"since": middle}).json()["changes"]
    assert later == changes[7:]
    window = flow.api(
        "GET", "/timeoff/requests/changes", token, params={"since": "2000-01-01T00:00:00Z", "to": middle}
    ).json()["changes"]
    assert window == changes[:8]
    missing = flow.api("GET", "/timeoff/requests/changes", token)
    assert missing.status_code == 400
    assert "since" in missing.json()["error"]
    bad = flow.api("GET", "/timeoff/requests/changes", token, params={"since": "yesterday"})
    assert bad.status_code == 400


def test_tasks_need_tasks_write(flow: Flow) -> None:
    reader = flow.connect("employee_data:read")["access_token"]
    denied = flow.api("GET", "/tasks", reader)
    assert denied.status_code == 403
    assert "tasks:write" in denied.json()["error"]
    flow.emu.uninstall()
    writer = flow.connect("employee_data:read tasks:write")["access_token"]
    tasks = flow.api("GET", "/tasks", writer).json()["tasks"]
    assert len(tasks) == 10
    assert {t["status"] for t in tasks} <= {"Open", "Closed"}


def test_people_search_allows_50_requests_a_minute(emu: RunningEmulator, flow: Flow) -> None:
    token = flow.connect()["access_token"]
    remaining = []
    for _ in range(50):
        response = flow.search(token)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == list(range(49, -1, -1))
    limited = flow.search(token)
    assert limited.status_code == 429
    reset = int(NOON // 60 + 1) * 60
    assert limited.headers["x-ratelimit-limit"] == "50"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == str(reset)
    assert limited.headers["retry-after"] == str(int(reset - NOON))
    assert limited.json()["key"] == "too_many_requests"
    # Other endpoints have their own budget, and the next minute starts afresh.
    assert flow.api("GET", "/people/" + emu.company().data["employees"][0]["id"], token).status_code == 200
    emu.advance_clock(60)
    assert flow.search(token).headers["x-ratelimit-remaining"] == "49"
    assert emu.stats.resource_calls["POST /people/search"] == 52


def test_rate_limits_can_be_changed_for_tests(emu: RunningEmulator, flow: Flow) -> None:
    token = flow.connect(ALL)["access_token"]
    emu.set_rate_limit("GET /company/named-lists", 2)
    statuses = [flow.api("GET", "/company/named-lists", token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    emu.set_rate_limit("/company/named-lists", None)
    assert flow.api("GET", "/company/named-lists", token).status_code == 200
    with pytest.raises(LookupError):
        emu.set_rate_limit("GET /nothing", 1)
