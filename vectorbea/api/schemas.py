"""The API's request and response documents (they make up /api/openapi.json)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from ninja import Field, Schema
from pydantic import ConfigDict

from vectorbea.approvals.forms import MAX_REASON

MAX_INT = 2_147_483_647
FieldValue = str | int | float | bool | None


class WorkflowOut(Schema):
    id: UUID
    name: str
    archived: bool
    latest_version: int | None = Field(
        description="The number of the newest published version; null if none is published."
    )


class VersionOut(Schema):
    number: int
    created_at: datetime
    input_schema: dict[str, Any] = Field(description="JSON Schema a run's input must match.")


class StartRunIn(Schema):
    model_config = ConfigDict(extra="forbid")  # a mistyped key is refused, not ignored

    input: dict[str, Any] = Field(
        default_factory=dict, description="The run's input, checked against the input schema."
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="The version number to run; default: the newest published one.",
    )


class RunOut(Schema):
    id: UUID
    workflow_id: UUID
    workflow: str
    version: int = Field(description="The version the run is on now.")
    status: str = Field(
        description="queued, running, retrying, waiting, paused, needs_attention, completed, "
        "failed, denied (an approval was denied and the workflow has no denied path) or "
        "cancelled."
    )
    error: str
    cost_usd: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int = Field(description="The seq of the run's newest event.")
    current_steps: list[str]
    output: Any = Field(default=None, description="The run's output once it has completed.")


class EventOut(Schema):
    seq: int
    type: str
    at: datetime
    payload: dict[str, Any]


class ApprovalOut(Schema):
    run_id: UUID
    step_id: str
    gate: str = Field(description="Which opening of the gate this is; send it back to decide.")
    workflow_id: UUID
    workflow: str
    step_name: str
    title: str
    instructions: str
    payload: Any
    fields: list[dict[str, Any]] = Field(description="What the approver may fill in.")
    run_input: Any
    status: str
    required: int = Field(description="How many approvals the gate needs.")
    granted_by: list[str]
    requested_at: datetime
    timeout_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    reason: str


class DecisionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(
        default="", max_length=MAX_REASON, description="Required to deny; recorded with the run."
    )
    fields: dict[str, FieldValue] = Field(
        default_factory=dict, description="Values for the approval's fields, by name."
    )
    gate: str | None = Field(
        default=None,
        max_length=80,
        description="The gate you saw (from the list); refused if the gate was asked again.",
    )
