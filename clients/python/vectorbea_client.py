"""A small Python client for the Vectorbea API. One file; it needs only httpx.

    from vectorbea_client import Vectorbea

    vb = Vectorbea("https://vectorbea.example.com", token="vb_…")
    run = vb.start_run(workflow_id, {"ticket": "Printer on fire"}, idempotency_key="ticket-81")
    run = vb.wait(run["id"], timeout=600)  # until it completes, fails, is denied or cancelled
    print(run["status"], run["output"])

    for approval in vb.approvals():                # what waits for this token's decision
        vb.decide(approval["run_id"], approval["step_id"], approve=True, reason="Looks right")

Every method returns the API's JSON as plain dicts and lists. A refusal raises
`VectorbeaError` with the HTTP status, the reason (`detail`) and the `problems` by path.
The full description of the API is at <your site>/api/openapi.json.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["FINISHED", "Vectorbea", "VectorbeaError"]

FINISHED = frozenset({"completed", "failed", "denied", "cancelled"})


class VectorbeaError(Exception):
    """The API refused a request: `status` (e.g. 409), `detail` (why, in plain words) and
    `problems` ([{"path": "input.ticket", "message": "..."}] for invalid values)."""

    def __init__(self, status: int, detail: str, problems: list[dict[str, str]] | None = None):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problems = problems or []


class Vectorbea:
    """A client for one workspace: the one its API token belongs to."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Vectorbea:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- workflows and runs -------------------------------------------------------------------

    def workflows(self) -> list[dict[str, Any]]:
        """The workspace's workflows, with the number of their newest published version."""
        return self._request("GET", "workflows")

    def start_run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of the workflow's newest published version (or `version`).

        With an `idempotency_key`, sending the same start again (a retry after a timeout, a
        duplicate delivery) returns the run the first one started instead of a new one."""
        body: dict[str, Any] = {"input": input}
        if version is not None:
            body["version"] = version
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", f"workflows/{workflow_id}/runs", json=body, headers=headers)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's status, error, cost, and its output once it has completed."""
        return self._request("GET", f"runs/{run_id}")

    def events(self, run_id: str, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        """The run's events with a seq greater than `after`, oldest first: pass the last
        seq you have to get only what is new."""
        return self._request(
            "GET", f"runs/{run_id}/events", params={"after": after, "limit": limit}
        )

    def wait(
        self,
        run_id: str,
        timeout: float = 300.0,
        *,
        until: frozenset[str] | set[str] = FINISHED,
        poll_seconds: float = 1.0,
    ) -> dict[str, Any]:
        """Poll the run until its status is one of `until` (by default: completed, failed,
        denied or cancelled) and return it. Add "needs_attention" or "waiting" to `until` to stop
        when it needs a person. Raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run["status"] in until:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Run {run_id} is still {run['status']} after {timeout:g}s")
            time.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel the run (409 if it has already finished)."""
        return self._request("POST", f"runs/{run_id}/cancel")

    def retry(self, run_id: str) -> dict[str, Any]:
        """Retry the run from its failed step, or the step that needs attention."""
        return self._request("POST", f"runs/{run_id}/retry")

    # --- approvals ----------------------------------------------------------------------------

    def approvals(self) -> list[dict[str, Any]]:
        """The approvals waiting for this token's decision."""
        return self._request("GET", "approvals")

    def decide(
        self,
        run_id: str,
        step_id: str,
        *,
        approve: bool,
        reason: str = "",
        fields: dict[str, Any] | None = None,
        gate: str | None = None,
    ) -> dict[str, Any]:
        """Approve or deny an approval (a denial needs a reason). Pass the `gate` from
        approvals() to be refused if the approval was asked again since."""
        body: dict[str, Any] = {"approve": approve, "reason": reason, "fields": fields or {}}
        if gate is not None:
            body["gate"] = gate
        return self._request("POST", f"approvals/{run_id}/{step_id}", json=body)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_success:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        detail = body.get("detail") or response.reason_phrase or "Request failed"
        raise VectorbeaError(response.status_code, str(detail), body.get("problems"))
