"""HiBob's OAuth scope catalogue: the 27 known scopes by feature area.

Source: HiBob's public API documentation and the connector-profile guide in
the project's reference folder. Scopes requested by a profile must also be
configured on the OAuth app in the HiBob Developer Portal.
"""

from __future__ import annotations

from connector_core import Scope, ScopeCatalogue, ScopeGroup

READ, WRITE = "read", "write"

TALENT = "Talent module"
HIRING = "Hiring module"
ATTENDANCE = "Attendance module"
WORKFORCE = "Workforce Planning module"
JOB_CATALOGUE = "new Job Catalogue"
PAYROLL_HUB = "Payroll Hub (payroll partners only)"

GROUPS = (
    ScopeGroup(
        key="core_employee_data",
        label="Core employee data",
        description="Reading and managing employee profiles, work history, lifecycle data and avatars.",
        scopes=(
            Scope(
                "employee_data:read",
                "Read employee profiles (people search, employee by id).",
                READ,
                notes=("The minimum scope every HiBob connection needs.",),
            ),
            Scope("employee_data:write", "Create and update employees, their lifecycle and avatars.", WRITE),
        ),
    ),
    ScopeGroup(
        key="employee_history",
        label="Employee history",
        description="Bulk employment, lifecycle and work history records through the bulk history endpoints.",
        scopes=(Scope("employee_data.history:read", "Read bulk employment, lifecycle and work history.", READ),),
    ),
    ScopeGroup(
        key="sensitive_employee_data",
        label="Sensitive employee data",
        description=(
            "Salary, variable pay, equity, bands, payroll, UK tax, EEO, identification and bank "
            "accounts. Request only when the integration needs payroll or compensation data."
        ),
        scopes=(
            Scope(
                "employee_data.sensitive:read",
                "Read sensitive field categories (pay, equity, bank accounts...).",
                READ,
                sensitive=True,
            ),
            Scope("employee_data.sensitive:write", "Update sensitive field categories.", WRITE, sensitive=True),
            Scope(
                "employee_data.sensitive.history:read",
                "Read the history of sensitive field categories.",
                READ,
                sensitive=True,
            ),
        ),
    ),
    ScopeGroup(
        key="company_metadata",
        label="Company metadata",
        description="Named lists, custom employee fields and onboarding wizards.",
        scopes=(
            Scope("company.metadata:read", "Read named lists, employee fields and onboarding wizards.", READ),
            Scope("company.metadata:write", "Manage named lists and custom employee fields.", WRITE),
        ),
    ),
    ScopeGroup(
        key="documents",
        label="Documents",
        description="Employee documents in shared, confidential and custom folders.",
        scopes=(
            Scope("documents:read", "List and download employee documents.", READ),
            Scope("documents:write", "Upload and delete employee documents.", WRITE),
        ),
    ),
    ScopeGroup(
        key="time_off",
        label="Time off",
        description="Time-off requests, balances, policy types and reason codes.",
        scopes=(
            Scope("timeoff:read", "Read time-off requests, balances and policy types.", READ),
            Scope("timeoff:write", "Create and cancel time-off requests, adjust balances.", WRITE),
            Scope(
                "timeoff.sensitive:read", "Read sensitive time-off details such as reason codes.", READ, sensitive=True
            ),
        ),
    ),
    ScopeGroup(
        key="tasks",
        label="Tasks",
        description="Listing, reading and completing employee tasks.",
        scopes=(
            Scope(
                "tasks:write",
                "List, read and complete employee tasks.",
                WRITE,
                notes=("There is no tasks:read: HiBob requires tasks:write even to list or read tasks.",),
            ),
        ),
    ),
    ScopeGroup(
        key="reports",
        label="Reports",
        description="Company reports.",
        scopes=(Scope("reports:read", "List and download company reports.", READ),),
    ),
    ScopeGroup(
        key="goals",
        label="Goals",
        description="Employee, team and company goals and key results.",
        scopes=(
            Scope("goals:read", "Read goals and key results.", READ, module=TALENT),
            Scope("goals:write", "Create and update goals and key results.", WRITE, module=TALENT),
        ),
    ),
    ScopeGroup(
        key="hiring",
        label="Hiring",
        description="Searching and reading active job ads from the HiBob career page.",
        scopes=(
            Scope(
                "hiring:write",
                "Search and read job ads.",
                WRITE,
                module=HIRING,
                notes=(
                    "There is no hiring:read: HiBob requires hiring:write for every hiring endpoint, reads included.",
                ),
            ),
        ),
    ),
    ScopeGroup(
        key="job_catalogue",
        label="Job catalogue",
        description="Job profiles, roles, families and family groups (the legacy catalogue is not in the API).",
        scopes=(
            Scope(
                "job_catalog:read",
                "Read job profiles, roles, families and family groups.",
                READ,
                module=JOB_CATALOGUE,
                notes=("Only the new Job Catalogue is served; the legacy Job Catalogue is not in the API.",),
            ),
        ),
    ),
    ScopeGroup(
        key="attendance",
        label="Attendance",
        description="Importing employee attendance punch records.",
        scopes=(Scope("attendance:write", "Import attendance punch records.", WRITE, module=ATTENDANCE),),
    ),
    ScopeGroup(
        key="workforce_planning",
        label="Workforce planning",
        description="Positions and headcount planning.",
        scopes=(
            Scope("workforce_planning:read", "Read positions and workforce plans.", READ, module=WORKFORCE),
            Scope("workforce_planning:write", "Create and update positions.", WRITE, module=WORKFORCE),
        ),
    ),
    ScopeGroup(
        key="learning_projects",
        label="Learning and projects",
        description="Learning platform integrations and project time tracking.",
        scopes=(
            Scope("learning.integrations:write", "Push learning records from a learning platform.", WRITE),
            Scope("projects:write", "Manage projects used for time tracking.", WRITE),
        ),
    ),
    ScopeGroup(
        key="payroll_hub",
        label="Payroll Hub",
        description="The payroll partner API; limited to 5 requests per minute.",
        scopes=(
            Scope(
                "payrollhub.employee_sync:write",
                "Sync employees to a payroll partner.",
                WRITE,
                module=PAYROLL_HUB,
                notes=("Partner API limited to 5 requests per minute.",),
            ),
            Scope(
                "payrollhub.payroll:read",
                "Read payroll data.",
                READ,
                module=PAYROLL_HUB,
                sensitive=True,
                notes=("Partner API limited to 5 requests per minute.",),
            ),
            Scope(
                "payrollhub.deductions:write",
                "Write payroll deductions.",
                WRITE,
                module=PAYROLL_HUB,
                sensitive=True,
                notes=("Partner API limited to 5 requests per minute.",),
            ),
        ),
    ),
)

#: Requested when a profile names neither scopes nor actions (the reference document's list).
DEFAULT_SCOPES = (
    "employee_data:read",
    "employee_data:write",
    "employee_data.history:read",
    "company.metadata:read",
    "company.metadata:write",
    "documents:read",
    "documents:write",
    "reports:read",
    "tasks:write",
    "timeoff:read",
    "timeoff:write",
)

MINIMUM_SCOPES = ("employee_data:read",)

CATALOGUE = ScopeCatalogue(groups=GROUPS, default_scopes=DEFAULT_SCOPES, minimum_scopes=MINIMUM_SCOPES)
