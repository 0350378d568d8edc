"""Mapping versions for the admin: validate, publish, roll back, diff.

How the file and the published versions relate (docs/api.md says the same for admins):

* The store keeps every published version (text, digest, author, time, note); exactly one is active.
* At start every process reads ``TIERDESK_MAPPINGS``. A broken file stops the start. A file that is new,
  or changed since it was last adopted, becomes the active version (author ``file``); an unchanged file
  leaves active whatever an admin published since. So a deploy that changes the file wins, and a
  restart does not undo the admin's work.
* Publishing validates the text (``parse_mapping``) and checks every group it names exists in each
  connected helpdesk; only then is it stored as the new active version. Every process picks it up
  before its next routed ticket (``Runtime.refresh_mapping``). A text that does not validate never
  becomes active.
* Publishing does not recompute anyone's segments inside the request (on a large population that took
  longer than a browser or proxy waits): the scheduler's ``refit`` job notices the new version within
  ``TIERDESK_REFIT_INTERVAL`` seconds and recomputes, under the same lock as the sync. Until it has,
  the version's refit is "pending" (``refit_status``), and the pages and API say so.
* Rolling back publishes an earlier version's text again as a new version, so history only grows.
* The file is never written: to make a published version the default of a fresh install, download it
  and commit it to ``mappings/``.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import asdict, dataclass
from typing import Any

from connectors.http import ApiError
from integration import segment_service
from integration.core.mapping import MappingError, MappingSpec
from integration.core.mapping_file import parse_mapping
from integration.core.models import MappingVersion
from integration.runtime import Runtime, text_digest

log = logging.getLogger("tierdesk.admin")


@dataclass(frozen=True)
class Problem:
    """Why a mapping text cannot become active; ``line`` points the editor at the spot."""

    message: str
    line: int | None = None
    key: str | None = None
    reason: str = ""
    error: str = "invalid_mapping"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(text: str, source: str = "draft") -> tuple[MappingSpec | None, Problem | None]:
    """Parse a mapping text; a MappingError becomes a Problem with its line, key and reason."""
    if not text.strip():
        return None, Problem("the mapping is empty", line=1, reason="the mapping is empty")
    try:
        return parse_mapping(text, source), None
    except MappingError as e:
        return None, Problem(str(e), line=e.line, key=e.key, reason=e.reason)
    except (RecursionError, ValueError, OverflowError, TypeError) as e:
        # parse_mapping turns every problem it knows into a MappingError; anything else is a gap in it,
        # logged as one, but still an invalid draft (422), never a 500 and never an active mapping
        log.exception("admin.validate_crashed")
        reason = f"the mapping could not be read ({e.__class__.__name__})"
        return None, Problem(f"{source}: {reason}", reason=reason)


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line and not line.lstrip().startswith("#"):
            return number
    return None


def check_groups(runtime: Runtime, mapping: MappingSpec, text: str) -> Problem | None:
    """Every group the mapping can set must exist in every connected helpdesk (asked live)."""
    for connector in runtime.helpdesks.values():
        try:
            connector.check_groups(set(mapping.groups))
        except ApiError as e:
            message = str(e)
            if e.retriable:
                return Problem(
                    f"could not check the groups in {connector.name} ({message}); try again",
                    error="helpdesk_unavailable",
                    reason=message,
                )
            # "... do not exist in Zendesk: A, B (has: C, D)": point at the first missing one
            listed = message.split(" (has:")[0].rsplit(": ", 1)[-1].split(", ")
            missing = [name for name in sorted(mapping.groups) if name in listed]
            line = next((n for n in (_line_of(text, name) for name in missing) if n), None)
            return Problem(message, line=line, key="group", reason=message, error="unknown_group")
    return None


@dataclass(frozen=True)
class Refit:
    """Whether everyone's stored segments were computed for the active version yet (the refit job)."""

    status: str  # "pending" or "done"
    version: int | None
    fitted_at: str | None  # when the stored segments were computed (for whichever mapping)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def refit_status(runtime: Runtime) -> Refit:
    store = runtime.store
    active = store.active_mapping_version()
    fitted = store.model_digest(segment_service.MODEL)
    done = not segment_service.refit_pending(store)
    return Refit("done" if done else "pending", active.id if active else None, fitted[1] if fitted else None)


def publish(
    runtime: Runtime, text: str, author: str, note: str, source: str = "admin"
) -> tuple[MappingVersion | None, Problem | None]:
    """Validate, check groups, store as the active version, and switch this process over."""
    mapping, problem = validate(text)
    if problem is not None or mapping is None:
        return None, problem
    digest = text_digest(text)
    if digest == runtime.store.active_mapping_digest():
        return None, Problem("this text is the active version already", error="unchanged")
    problem = check_groups(runtime, mapping, text)
    if problem is not None:
        return None, problem
    version = runtime.store.publish_mapping_version(text, digest, author, note.strip(), source)
    log.info("admin.mapping_published", extra={"version": version.id, "author": author})
    runtime.refresh_mapping()  # this process routes with it at once; the refit job recomputes segments
    return version, None


def rollback(
    runtime: Runtime, version_id: int, author: str, note: str = "", source: str = "admin"
) -> tuple[MappingVersion | None, Problem | None]:
    """Publish an earlier version's text again, as a new version (validated like any other)."""
    old = runtime.store.get_mapping_version(version_id)
    if old is None:
        return None, Problem(f"there is no mapping version {version_id}", error="not_found")
    why = f"roll back to version {old.id}" + (f": {note.strip()}" if note.strip() else "")
    return publish(runtime, old.text, author, why, source)


def previous_version(runtime: Runtime, version: MappingVersion) -> MappingVersion | None:
    return next((v for v in runtime.store.mapping_versions(1000) if v.id < version.id), None)


def diff(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs; kind is add, remove, hunk, file or same."""
    out = []
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3)
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "same"
        out.append((kind, line))
    return out


def excerpt(text: str, line: int | None, context: int = 3) -> list[tuple[int, str, bool]]:
    """The lines around ``line`` as (number, text, is the line) for showing an error in place."""
    if not line:
        return []
    lines = text.splitlines() or [""]
    start = max(1, line - context)
    end = min(len(lines), line + context)
    return [(n, lines[n - 1], n == line) for n in range(start, end + 1)]


def version_dict(version: MappingVersion, *, text: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": version.id,
        "digest": version.digest,
        "author": version.author,
        "note": version.note,
        "source": version.source,
        "created_at": version.created_at,
        "active": version.active,
    }
    if text:
        out["text"] = version.text
    return out
