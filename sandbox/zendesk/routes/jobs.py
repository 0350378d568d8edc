"""Zendesk's bulk writes and the job queue that works them off: update_many for users, organizations and
tickets, create_many for tickets, and /job_statuses to follow them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, request

from sandbox.base import route
from sandbox.zendesk.common import (
    BULK_LIMIT,
    Task,
    ZendeskError,
    as_int,
    bad_request,
    not_found,
)
from sandbox.zendesk.routes.http import ZendeskHttp


class JobRoutes(ZendeskHttp):
    """Bulk endpoints answer with a job_status at once; a small pool runs the job in the background."""

    def _update_many(
        self,
        single: str,
        plural: str,
        table: dict[int, dict[str, Any]],
        external_index: Mapping[str, int],
        update: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]],
    ) -> Response:
        """Bulk (?ids= + one object) or batch ({plural: [...]}) update, done by a background job."""
        body = self._body()
        items: list[tuple[Any, Mapping[str, Any]]] = []
        if isinstance(body.get(plural), list):
            batch = body[plural]
            if len(batch) > BULK_LIMIT:
                raise bad_request("InvalidValue", f"{plural} accepts at most {BULK_LIMIT} records")
            for entry in batch:
                if not isinstance(entry, dict):
                    raise bad_request("InvalidValue", f"every entry of {plural} must be an object")
                items.append((entry.get("id", ("external_id", entry.get("external_id"))), entry))
        else:
            data = self._wrapped(body, single)
            if request.args.get("external_ids"):
                items = [(("external_id", v), data) for v in self._id_list("external_ids")]
            else:
                items = [(i, data) for i in self._int_ids("ids", required=True)]

        def make_task(ref: Any, data: Mapping[str, Any]) -> Task:
            def task(_deliveries: list[dict[str, Any]]) -> dict[str, Any]:
                record_id: int | None
                if isinstance(ref, tuple):
                    record_id = external_index.get(str(ref[1]).lower()) if ref[1] is not None else None
                else:
                    try:
                        record_id = as_int(ref)
                    except ValueError:
                        record_id = None
                record = table.get(record_id) if record_id is not None else None
                if record is None:
                    raise not_found()
                fields = {k: v for k, v in data.items() if k not in ("id",)}
                update(record, fields)
                return {"id": record["id"], "action": "update", "status": "Updated", "success": True}

            return task

        tasks = [make_task(ref, data) for ref, data in items]
        with self._lock:
            job = self._queue_job(f"bulk_update_{plural}", tasks, [_int_or_none(ref) for ref, _ in items])
        return self._json({"job_status": job})

    @route("/users/update_many", "PUT")
    def _update_many_users(self) -> Response:
        return self._update_many("user", "users", self._users, self._user_external_index, self._update_user)

    @route("/organizations/update_many", "PUT")
    def _update_many_orgs(self) -> Response:
        return self._update_many(
            "organization", "organizations", self._orgs, self._org_external_index, self._update_org
        )

    @route("/tickets/update_many", "PUT")
    def _update_many_tickets(self) -> Response:
        body = self._body()
        entries: list[tuple[Any, dict[str, Any]]]
        if isinstance(body.get("tickets"), list):
            if len(body["tickets"]) > BULK_LIMIT:
                raise bad_request("InvalidValue", f"tickets accepts at most {BULK_LIMIT} records")
            if not all(isinstance(t, dict) for t in body["tickets"]):
                raise bad_request("InvalidValue", "every entry of tickets must be an object")
            entries = [(t.get("id"), t) for t in body["tickets"]]
        else:
            data = self._wrapped(body, "ticket")
            entries = [(i, data) for i in self._int_ids("ids", required=True)]
        actor = self.api_user_id

        def make_task(ref: Any, data: Mapping[str, Any]) -> Task:
            def task(out: list[dict[str, Any]]) -> dict[str, Any]:
                try:
                    ticket_id = as_int(ref)
                except ValueError:
                    raise not_found() from None
                fields = {k: v for k, v in data.items() if k != "id"}
                ticket, _audit, deliveries = self._update_ticket(ticket_id, fields, actor)
                out.extend(deliveries)
                return {"id": ticket["id"], "action": "update", "status": "Updated", "success": True}

            return task

        with self._lock:
            tasks = [make_task(r, d) for r, d in entries]
            job = self._queue_job("bulk_update_tickets", tasks, [_int_or_none(r) for r, _ in entries])
        return self._json({"job_status": job})

    @route("/tickets/create_many", "POST")
    def _create_many_tickets(self) -> Response:
        body = self._body()
        tickets = body.get("tickets")
        if not isinstance(tickets, list) or not tickets:
            raise bad_request("ParameterMissing", "param is missing or the value is empty: tickets")
        if len(tickets) > BULK_LIMIT:
            raise bad_request("InvalidValue", f"tickets accepts at most {BULK_LIMIT} records")
        actor = self.api_user_id

        def make_task(data: Any) -> Task:
            def task(out: list[dict[str, Any]]) -> dict[str, Any]:
                if not isinstance(data, dict):
                    raise bad_request("InvalidValue", "ticket must be an object")
                ticket, _audit, deliveries = self._create_ticket(data, actor)
                out.extend(deliveries)
                return {"id": ticket["id"], "action": "create", "status": "Created", "success": True}

            return task

        with self._lock:
            job = self._queue_job("bulk_create_tickets", [make_task(t) for t in tickets])
        return self._json({"job_status": job})

    def _queue_job(
        self, job_type: str, tasks: list[Task], record_ids: list[int | None] | None = None
    ) -> dict[str, Any]:
        """Queue a bulk job; `record_ids` (one per task, where the request named a record by id) let a
        failed record's result carry its id, as Zendesk's do."""
        job = {
            "id": uuid.uuid4().hex,
            "job_type": job_type,
            "status": "queued",
            "total": len(tasks),
            "progress": 0,
            "message": None,
            "results": None,
            "_seq": next(self._seq),
        }
        self._jobs[job["id"]] = job
        rendered = self._render_job(job)
        self._job_pool.submit(self._run_job, job["id"], tasks, record_ids)
        return rendered

    def _run_job(self, job_id: str, tasks: list[Task], record_ids: list[int | None] | None = None) -> None:
        """Work a bulk job off like Zendesk's job queue: queued, working, then completed."""
        time.sleep(0.005)
        deliveries: list[dict[str, Any]] = []
        with self._lock:
            job = self._jobs[job_id]
            job["status"] = "working"
            job["results"] = []
        for index, task in enumerate(tasks):
            with self._lock:
                # A failed record is {"index", "error", "id", "details"} with no "success" key, as Zendesk
                # answers (recorded: {"index":1,"error":"OrganizationUpdateFailed","id":...,"details":...}).
                failed: dict[str, Any] = {"index": index}
                ref = record_ids[index] if record_ids else None
                try:
                    result = task(deliveries)  # a written record: {"id", "action", "status", "success"}
                except ZendeskError as e:
                    body = e.body if isinstance(e.body, dict) else {"error": str(e.body)}
                    failed["error"] = body.get("error", "Error")
                    result = failed
                except Exception as e:  # a sandbox bug must still finish the job visibly
                    failed["error"], body = "InternalError", {"description": str(e)}
                    result = failed
                if result is failed:
                    if ref is not None:
                        failed["id"] = ref
                    failed["details"] = _describe(body)
                job["results"].append(result)
                job["progress"] = index + 1
        with self._lock:
            job["status"] = "completed"
            job["message"] = f"Completed at {self._now():%Y-%m-%d %H:%M:%S} +0000"
        self._dispatch(deliveries)

    @route("/job_statuses", "GET")
    def _list_jobs(self) -> Response:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: -j["_seq"])
            return self._json(self._paginate("job_statuses", jobs, self._render_job, lambda j: -j["_seq"]))

    @route("/job_statuses/<job_status_id>", "GET")
    def _show_job(self, job_status_id: str) -> Response:
        with self._lock:
            job = self._jobs.get(job_status_id)
            if job is None:
                raise not_found()
            return self._json({"job_status": self._render_job(job)})

    @route("/job_statuses/show_many", "GET")
    def _show_many_jobs(self) -> Response:
        ids = self._id_list("ids", required=True)
        with self._lock:
            return self._json(
                {"job_statuses": [self._render_job(self._jobs[i]) for i in ids if i in self._jobs]}
            )


def _int_or_none(ref: Any) -> int | None:
    """A bulk entry's record id when it names one by id (not by external_id)."""
    if isinstance(ref, tuple):
        return None
    try:
        return as_int(ref)
    except (TypeError, ValueError):
        return None


def _describe(body: Mapping[str, Any]) -> str:
    """One line for a job result out of an error body."""
    details = body.get("details")
    if isinstance(details, dict):
        return "; ".join(item["description"] for items in details.values() for item in items)
    return str(body.get("description") or body.get("error") or "")
