"""HiBob for the built-in emulator: the test app, a generated company and a slice of the API.

What is modelled, from the provider facts (see ``docs/emulator.md`` in
connector-core for the generic part):

* an app with an App ID, Development and Production credentials, and every
  catalogue scope configured on it; client authentication with HTTP Basic (the
  declaration's method);
* all-or-nothing consent with an audience choice (all employees, or selected
  departments); employees outside the audience are left out of results and
  answer 404;
* one installation per company and credential set: authorizing again while
  installed fails until the app is uninstalled;
* refresh-token rotation, ``companyId`` in the token response;
* service users (HTTP Basic, ``SERVICE-`` IDs) issued per company, in permission groups
  that decide what they may read (in none, everything answers 403);
* ``POST /people/search`` (50 requests a minute), ``GET /people/{identifier}``,
  ``GET /company/named-lists[/{listName}]``, ``GET /timeoff/requests/changes``
  and ``GET /tasks`` (which needs ``tasks:write``), with HiBob's
  ``{"key": ..., "error": ...}`` error bodies.

Unconfirmed by HiBob, and so only assumptions here: token lifetimes (one hour),
single-use refresh tokens, the error ``key`` values, the exact response fields of
the time-off and task endpoints, and a 400 for unknown people-search fields.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connector_core.emulator import (
    AppRegistration,
    Audience,
    EmulatedCompany,
    EmulatorSpec,
    PermissionGroup,
    ResourceEndpoint,
    ResourceError,
    ResourceRequest,
    ResourceResponse,
)

__all__ = [
    "APP_ID",
    "EMPLOYEE_COUNT",
    "PERMISSION_GROUPS",
    "SEED",
    "SERVICE_USER_PREFIX",
    "emulator_spec",
    "hibob_error",
    "make_company",
]

APP_ID = "emulated-hibob-app"
SEED = 20250101
EMPLOYEE_COUNT = 25
#: HiBob's documented limit for people search.
PEOPLE_SEARCH_PER_MINUTE = 50

_FIRST = (
    "Ada", "Ben", "Chloe", "Dan", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam", "Maya",
    "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Uri", "Vera", "Wen", "Yara", "Zoe", "Omar",
)  # fmt: skip
_SURNAMES = (
    "Adler", "Brooks", "Cohen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski",
    "Levi", "Moreau", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka", "Usman", "Varga",
    "Weber", "Young", "Zhang", "Novak",
)  # fmt: skip
_COMPANIES = ("Northwind Traders", "Globex", "Initech", "Hooli", "Vandelay Industries", "Stark Logistics")
_DEPARTMENTS = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Engineering Manager"),
    "Product": ("Product Manager", "Product Designer"),
    "Sales": ("Account Executive", "Sales Manager"),
    "Marketing": ("Content Marketer", "Marketing Lead"),
    "People": ("People Partner", "Head of People"),
    "Finance": ("Accountant", "Finance Lead"),
}
_SITES = ("London", "New York", "Tel Aviv", "Berlin")
_POLICIES = ("Holiday", "Sick", "Parental leave")
_TASK_TITLES = (
    "Sign the employment contract",
    "Upload a photo ID",
    "Complete security training",
    "Set up your laptop",
    "Meet your buddy",
    "Add bank details",
    "Read the employee handbook",
    "Book an onboarding session",
)
_EPOCH = dt.date(2025, 1, 1)


def hibob_error(status: int, key: str, message: str) -> Mapping[str, Any]:
    """HiBob's usual error body."""
    return {"key": key, "error": message}


def make_company(seed: int) -> EmulatedCompany:
    """A small deterministic company: 25 employees in 6 departments and 4 sites,
    named lists, time-off request changes and onboarding tasks."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    company_id = str(rng.randrange(100_000, 1_000_000))
    name = rng.choice(_COMPANIES)
    domain = re.sub(r"[^a-z]+", "", name.lower()) + ".example"
    pairs = rng.sample([(f, s) for f in _FIRST for s in _SURNAMES], EMPLOYEE_COUNT)
    departments = list(_DEPARTMENTS)
    inactive = set(rng.sample(range(1, EMPLOYEE_COUNT), 3))
    employees: list[dict[str, Any]] = []
    heads: dict[str, dict[str, Any]] = {}
    for index, (first, surname) in enumerate(pairs):
        department = departments[index % len(departments)]
        employee_id = str(rng.randrange(10**18, 10**19))
        start = _EPOCH - dt.timedelta(days=rng.randrange(30, 2500))
        head = heads.get(department)
        manager = head or (employees[0] if employees else None)
        titles = _DEPARTMENTS[department]
        employee = {
            "id": employee_id,
            "companyId": company_id,
            "firstName": first,
            "surname": surname,
            "displayName": f"{first} {surname}",
            "email": f"{first}.{surname}@{domain}".lower(),
            "work": {
                "department": department,
                "site": _SITES[rng.randrange(len(_SITES))],
                "title": titles[-1] if head is None else rng.choice(titles[:-1] or titles),
                "startDate": start.isoformat(),
                "employeeIdInCompany": index + 1,
                "isManager": head is None,
                "reportsTo": None
                if manager is None
                else {"id": manager["id"], "displayName": manager["displayName"], "email": manager["email"]},
            },
            "internal": {
                "status": "Inactive" if index in inactive else "Active",
                "terminationDate": (_EPOCH - dt.timedelta(days=rng.randrange(1, 200))).isoformat()
                if index in inactive
                else None,
            },
        }
        heads.setdefault(department, employee)
        employees.append(employee)

    def named_list(list_name: str, values: Sequence[str]) -> dict[str, Any]:
        return {
            "name": list_name,
            "values": [
                {"id": str(1000 + i), "value": v, "name": v, "archived": False, "children": []}
                for i, v in enumerate(values)
            ],
        }

    all_titles = sorted({t for ts in _DEPARTMENTS.values() for t in ts})
    changes = []
    for request_id in range(1, 16):
        who = rng.choice(employees)
        start = _EPOCH + dt.timedelta(days=rng.randrange(0, 120))
        changed = dt.datetime.combine(start - dt.timedelta(days=rng.randrange(1, 20)), dt.time(9 + request_id % 8))
        changes.append(
            {
                "changeType": rng.choice(("Created", "Approved", "Canceled")),
                "changedAt": changed.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z"),
                "employeeId": who["id"],
                "employeeDisplayName": who["displayName"],
                "employeeEmail": who["email"],
                "requestId": 5000 + request_id,
                "policyTypeDisplayName": rng.choice(_POLICIES),
                "type": "days",
                "startDate": start.isoformat(),
                "startPortion": "all_day",
                "endDate": (start + dt.timedelta(days=rng.randrange(0, 5))).isoformat(),
                "endPortion": "all_day",
            }
        )
    changes.sort(key=lambda c: c["changedAt"])
    tasks = []
    for task_id in range(1, 11):
        owner, requested_for = rng.choice(employees), rng.choice(employees)
        done = rng.random() < 0.3
        tasks.append(
            {
                "id": 7000 + task_id,
                "title": rng.choice(_TASK_TITLES),
                "listName": "Onboarding",
                "status": "Closed" if done else "Open",
                "dueDate": (_EPOCH + dt.timedelta(days=rng.randrange(0, 60))).isoformat(),
                "owner": _person(owner),
                "requestedFor": _person(requested_for),
            }
        )
    data = {
        "employees": employees,
        "departments": departments,
        "named_lists": {
            "department": named_list("department", departments),
            "site": named_list("site", _SITES),
            "title": named_list("title", all_titles),
        },
        "timeoff_changes": changes,
        "tasks": tasks,
    }
    return EmulatedCompany(id=company_id, name=name, data=data)


def _person(employee: Mapping[str, Any]) -> dict[str, Any]:
    return {k: employee[k] for k in ("id", "firstName", "surname", "email")}


def _departments(company: EmulatedCompany) -> Sequence[str]:
    return tuple(company.data["departments"])


# ------------------------------------------------------------------------- handlers


def _visible(request: ResourceRequest) -> list[dict[str, Any]]:
    """The employees the installation's audience lets the app see."""
    employees: list[dict[str, Any]] = list(request.company.data["employees"])
    if request.audience == "departments":
        chosen = set(request.audience_options)
        employees = [e for e in employees if e["work"]["department"] in chosen]
    return employees


def _field(employee: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    parts = path.split(".")
    if parts[0] == "root":
        parts = parts[1:]
    node: Any = employee
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return bool(parts), node


def _project(employee: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in fields:
        parts = path.split(".")
        if parts[0] == "root":
            parts = parts[1:]
        _, value = _field(employee, path)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def people_search(request: ResourceRequest) -> ResourceResponse:
    body = request.json_body() or {}
    if not isinstance(body, dict):
        raise ResourceError(400, "bad_request", "The body must be a JSON object.")
    fields = body.get("fields") or []
    show_inactive = body.get("showInactive", False)
    filters = body.get("filters") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ResourceError(400, "bad_request", "fields must be a list of field paths such as root.id.")
    if not isinstance(show_inactive, bool):
        raise ResourceError(400, "bad_request", "showInactive must be true or false.")
    if not isinstance(filters, list):
        raise ResourceError(400, "bad_request", "filters must be a list.")
    employees = _visible(request)
    sample = request.company.data["employees"][0]
    unknown = [f for f in fields if not _field(sample, f)[0]]
    if unknown:
        raise ResourceError(400, "bad_request", f"Unknown field(s): {', '.join(unknown)}.")
    for flt in filters:
        if not isinstance(flt, dict) or flt.get("operator") != "equals":
            raise ResourceError(400, "bad_request", "Only filters with operator 'equals' are supported.")
        path, values = flt.get("fieldPath"), flt.get("values")
        if not isinstance(path, str) or not _field(sample, path)[0] or not isinstance(values, list):
            raise ResourceError(400, "bad_request", "A filter needs a known fieldPath and a list of values.")
        employees = [e for e in employees if _field(e, path)[1] in values]
    if not show_inactive:
        employees = [e for e in employees if e["internal"]["status"] == "Active"]
    result = [_project(e, fields) if fields else e for e in employees]
    return ResourceResponse(200, {"employees": result})


def person(request: ResourceRequest) -> ResourceResponse:
    identifier = request.path_params["identifier"]
    for employee in _visible(request):
        if identifier in (employee["id"], employee["email"]):
            return ResourceResponse(200, employee)
    raise ResourceError(404, "not_found", f"Employee {identifier} was not found.")


def named_lists(request: ResourceRequest) -> ResourceResponse:
    return ResourceResponse(200, dict(request.company.data["named_lists"]))


def named_list(request: ResourceRequest) -> ResourceResponse:
    lists = request.company.data["named_lists"]
    name = request.path_params["list_name"]
    if name not in lists:
        raise ResourceError(404, "not_found", f"Named list {name} was not found.")
    return ResourceResponse(200, lists[name])


def _timestamp(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ResourceError(400, "bad_request", f"{name} must be an ISO 8601 date-time, got {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def timeoff_changes(request: ResourceRequest) -> ResourceResponse:
    since_text = request.query_value("since")
    if not since_text:
        raise ResourceError(400, "bad_request", "The since query parameter is required.")
    since = _timestamp(since_text, "since")
    to_text = request.query_value("to")
    until = _timestamp(to_text, "to") if to_text else None
    visible = {e["id"] for e in _visible(request)}
    changes = [
        c
        for c in request.company.data["timeoff_changes"]
        if c["employeeId"] in visible
        and _timestamp(c["changedAt"], "changedAt") >= since
        and (until is None or _timestamp(c["changedAt"], "changedAt") <= until)
    ]
    return ResourceResponse(200, {"changes": changes})


def tasks(request: ResourceRequest) -> ResourceResponse:
    visible = {e["id"] for e in _visible(request)}
    found = [t for t in request.company.data["tasks"] if t["requestedFor"]["id"] in visible]
    return ResourceResponse(200, {"tasks": found})


RESOURCES = (
    ResourceEndpoint(
        "POST",
        "/people/search",
        ("employee_data:read",),
        people_search,
        rate_limit_per_minute=PEOPLE_SEARCH_PER_MINUTE,
        description="Search employees: fields, filters (equals), showInactive.",
    ),
    ResourceEndpoint("GET", "/people/{identifier}", ("employee_data:read",), person, description="One employee."),
    ResourceEndpoint("GET", "/company/named-lists", ("company.metadata:read",), named_lists),
    ResourceEndpoint("GET", "/company/named-lists/{list_name}", ("company.metadata:read",), named_list),
    ResourceEndpoint(
        "GET",
        "/timeoff/requests/changes",
        ("timeoff:read",),
        timeoff_changes,
        description="Time-off request changes since a date-time.",
    ),
    ResourceEndpoint("GET", "/tasks", ("tasks:write",), tasks, description="Tasks; HiBob needs tasks:write to list."),
)


#: Service users' permission groups, as a Bob admin sets them up (Settings → Integrations → Service
#: users → permissions); a new service user is in none, and may read nothing.
PERMISSION_GROUPS = (
    PermissionGroup(
        "employees_read",
        "Employees: read",
        ("employee_data:read",),
        "People search and employee profiles.",
    ),
    PermissionGroup(
        "hr_read",
        "HR data: read",
        ("employee_data:read", "company.metadata:read", "timeoff:read"),
        "Employees, named lists and time-off request changes.",
    ),
    PermissionGroup("tasks", "Tasks", ("tasks:write",), "Employee tasks (HiBob needs tasks:write to list them)."),
)
#: What service user IDs start with.
SERVICE_USER_PREFIX = "SERVICE-"


def emulator_spec() -> EmulatorSpec:
    """How the built-in emulator imitates HiBob."""
    return EmulatorSpec(
        app=AppRegistration(
            app_id=APP_ID,
            name="Emulator Test App",
            description="A test app registered with the emulated HiBob Developer Portal.",
            credential_sets=("development", "production"),
        ),
        resources=RESOURCES,
        access_token_lifetime=3600,
        rotate_refresh_tokens=True,
        single_installation=True,
        already_installed_error="access_denied",
        already_installed_description=(
            "The app is already installed in this company. Uninstall it first (Bob: Marketplace, open the app, "
            "Uninstall), then install it again."
        ),
        all_or_nothing_consent=True,
        audiences=(
            Audience("all", "All employees", "The app sees every employee."),
            Audience(
                "departments",
                "Selected departments",
                "The app sees only employees of the departments you pick.",
                options=_departments,
            ),
        ),
        identity_field="companyId",
        error_body=hibob_error,
        company_factory=make_company,
        seed=SEED,
        permission_groups=PERMISSION_GROUPS,
        credential_username_prefix=SERVICE_USER_PREFIX,
    )
