"""The dependency audit `make test` runs: fails on a known vulnerability, never passes silently.

pip-audit runs for real, talking HTTP on loopback to a stand-in for OSV's /v1/query (pip-audit's
`--osv-url`), so these tests need no network: one stand-in knows an advisory for an installed package,
one answers 503 as an unreachable service would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tools.audit_deps import Audit, read_report, verdict

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "tools" / "audit_deps.py"


def _osv_stand_in(answer: Any) -> Iterator[str]:
    @Request.application
    def app(request: Request) -> Response:
        if isinstance(answer, int):
            return Response("unavailable", status=answer)
        query = json.loads(request.get_data())
        name = query["package"]["name"]
        return Response(json.dumps(answer(name, query["version"])), mimetype="application/json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()


def _advisory_for_gunicorn(name: str, version: str) -> dict[str, Any]:
    if name != "gunicorn":
        return {}
    return {
        "vulns": [
            {
                "id": "GHSA-test-0000-0000",
                "aliases": ["CVE-2099-0001"],
                "summary": "request smuggling (a stand-in advisory)",
                "affected": [
                    {
                        "package": {"name": "gunicorn", "ecosystem": "PyPI"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999.0"}]}
                        ],
                    }
                ],
            }
        ]
    }


@pytest.fixture
def osv_with_an_advisory() -> Iterator[str]:
    yield from _osv_stand_in(_advisory_for_gunicorn)


@pytest.fixture
def osv_unavailable() -> Iterator[str]:
    yield from _osv_stand_in(503)


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed program under this interpreter
        [sys.executable, str(AUDIT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )


def test_a_known_vulnerability_fails_the_audit(osv_with_an_advisory: str) -> None:
    done = _audit("--service", "osv", "--osv-url", osv_with_an_advisory)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "KNOWN VULNERABILITIES" in done.stderr
    assert "gunicorn" in done.stderr
    assert "GHSA-test-0000-0000" in done.stderr
    assert "CVE-2099-0001" in done.stderr
    assert "fixed in 999.0" in done.stderr


def test_an_unreachable_service_is_reported_as_not_done_never_as_clean(osv_unavailable: str) -> None:
    done = _audit("--service", "osv", "--osv-url", osv_unavailable)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DEPENDENCY AUDIT NOT DONE" in done.stdout
    assert "No known vulnerabilities" not in done.stdout
    strict = _audit("--service", "osv", "--osv-url", osv_unavailable, "--strict")
    assert strict.returncode == 2
    assert "DEPENDENCY AUDIT NOT DONE" in strict.stderr


def _pypi_report(skipped: list[str], audited: dict[str, str]) -> str:
    reason = "Dependency not found on PyPI and could not be audited: {} (1.0)"
    deps = [{"name": n, "skip_reason": reason.format(n)} for n in skipped]
    deps += [{"name": n, "version": v, "vulns": []} for n, v in audited.items()]
    return json.dumps({"dependencies": deps, "fixes": []})


def test_every_package_skipped_is_not_a_clean_bill() -> None:
    """What pip-audit's PyPI service does on this network: 404 for every version page, rc 0."""
    audit = read_report("pypi", _pypi_report(["flask", "requests", "gunicorn"], {}), "", 0)
    code, text = verdict([audit])
    assert code == 0
    assert text.startswith("DEPENDENCY AUDIT NOT DONE")
    assert "all 3 packages skipped: Dependency not found on PyPI and could not be audited (3)" in text
    assert verdict([audit], strict=True)[0] == 2


def test_a_partial_audit_names_what_it_could_not_audit() -> None:
    audit = read_report(
        "pypi", _pypi_report(["sqlite-fts4"], {"flask": "3.1.3", "requests": "2.34.2"}), "", 0
    )
    code, text = verdict([audit])
    assert code == 0
    assert "2 installed packages audited, no known vulnerabilities; 1 NOT audited: sqlite-fts4" in text


def test_a_run_without_a_report_says_why() -> None:
    audit = read_report("osv", "", "Traceback ...\nConnectionError: could not reach api.osv.dev\n", 1)
    assert audit.failure == "ConnectionError: could not reach api.osv.dev"
    code, text = verdict([Audit("pypi", skipped={"flask": "not found"}), audit])
    assert (code, text.splitlines()[0]) == (
        0,
        "DEPENDENCY AUDIT NOT DONE: pip-audit could audit none of the installed packages.",
    )
    assert "osv: the run failed: ConnectionError" in text


@pytest.mark.parametrize(
    ("package", "vulnerable", "fixed"),
    [
        ("gunicorn", ["21.2.0", "22.0.0"], "23.0.0"),  # CVE-2024-1135; GHSA-hc5x-x2vx-497g lists < 23
        ("requests", ["2.31.0", "2.32.3", "2.32.5"], "2.33.0"),  # CVE-2024-47081, CVE-2026-25645
        ("werkzeug", ["3.0.4", "3.0.5", "3.1.5"], "3.1.6"),  # CVE-2024-49766/49767 ... CVE-2026-27199
        ("flask", ["3.1.0", "3.1.2"], "3.1.3"),  # CVE-2025-47278, CVE-2026-27205
        ("jinja2", ["3.1.4", "3.1.5"], "3.1.6"),  # CVE-2024-56201/56326, CVE-2025-27516
        ("urllib3", ["2.2.1", "2.5.0", "2.6.2"], "2.6.3"),  # CVE-2025-50181 ... CVE-2026-21441
    ],
)
def test_lower_bounds_exclude_versions_with_known_advisories(
    package: str, vulnerable: list[str], fixed: str
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    assert package in wanted, f"{package} has no lower bound in pyproject.toml"
    spec = wanted[package].specifier
    assert not [v for v in vulnerable if spec.contains(v)], str(spec)
    assert spec.contains(fixed)


def test_make_test_runs_the_audit() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "tools/audit_deps.py" in recipe
