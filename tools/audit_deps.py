"""Audit the installed packages for known vulnerabilities with pip-audit, and say plainly what it did.

    .venv/bin/python tools/audit_deps.py            # `make test` and `make audit` run this
    .venv/bin/python tools/audit_deps.py --strict   # also fail when the audit could not be done

Why a wrapper: pip-audit prints "No known vulnerabilities found" and exits 0 even when it audited
nothing. Its PyPI service asks https://pypi.org/pypi/<name>/<version>/json; where that answers 404
(some proxies pass only the project pages) it skips every package as "not found on PyPI"; its OSV
service needs api.osv.dev. Either way the run looks like a clean bill. Here:

* a known vulnerability in any audited package fails (exit 1), naming the package, the advisory and
  the fixed versions;
* packages that could not be audited are counted and named, with pip-audit's reason;
* when nothing at all could be audited the report says NOT DONE in capitals and why; that passes
  (exit 0: a network that cannot reach the services must not fail every build) unless --strict.

With --service auto (the default) the OSV service is asked when the PyPI service audited nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 300  # seconds for one pip-audit run; it makes one request per installed package


@dataclass
class Audit:
    """One pip-audit run, read from its JSON report."""

    service: str
    audited: dict[str, str] = field(default_factory=dict)  # name -> version
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why pip-audit skipped it
    vulns: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (name, version, vuln)
    failure: str | None = None  # pip-audit did not produce a report at all, and why


def read_report(service: str, stdout: str, stderr: str, returncode: int) -> Audit:
    """What one run found; a run that printed no JSON report is a failure with pip-audit's last words."""
    audit = Audit(service)
    try:
        report = json.loads(stdout)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        audit.failure = (lines[-1] if lines else f"pip-audit exited {returncode} with no report")[:300]
        return audit
    for dep in dependencies:
        name = str(dep.get("name"))
        if "skip_reason" in dep:
            audit.skipped[name] = str(dep["skip_reason"])
            continue
        version = str(dep.get("version"))
        audit.audited[name] = version
        for vuln in dep.get("vulns") or []:
            audit.vulns.append((name, version, vuln))
    return audit


def run_pip_audit(service: str, osv_url: str | None, timeout: float = TIMEOUT) -> Audit:
    args = [sys.executable, "-m", "pip_audit", "--local", "--skip-editable", "--format", "json"]
    args += ["--progress-spinner", "off", "--vulnerability-service", service, "--timeout", "15"]
    if osv_url and service == "osv":
        args += ["--osv-url", osv_url]
    with tempfile.TemporaryDirectory(prefix="tierdesk-audit-") as cache:
        args += ["--cache-dir", cache]  # a fresh answer every time, never one cached from last week
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            return Audit(service, failure=f"pip-audit did not finish within {timeout:.0f} s")
    return read_report(service, done.stdout, done.stderr, done.returncode)


def _why_skipped(audit: Audit) -> str:
    reasons: dict[str, int] = {}
    for reason in audit.skipped.values():
        short = reason.split(":")[0]
        reasons[short] = reasons.get(short, 0) + 1
    return "; ".join(f"{reason} ({n})" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))


def verdict(audits: list[Audit], strict: bool = False) -> tuple[int, str]:
    """(exit code, report) over the runs made: a vulnerability anywhere fails; the best run reports."""
    lines: list[str] = []
    found = [(audit.service, *v) for audit in audits for v in audit.vulns]
    if found:
        lines.append(f"KNOWN VULNERABILITIES in installed packages ({len(found)}):")
        for service, name, version, vuln in found:
            aliases = [a for a in vuln.get("aliases") or [] if a != vuln.get("id")]
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            also = f" ({', '.join(aliases)})" if aliases else ""
            lines.append(f"  {name} {version}: {vuln.get('id')}{also}, fixed in {fixed} [{service}]")
        lines.append(
            "Raise the lower bound in pyproject.toml past the affected versions, reinstall, run again."
        )
        return 1, "\n".join(lines)
    best = max(audits, key=lambda a: len(a.audited))
    if best.audited:
        text = (
            f"dependency audit (pip-audit, {best.service}): {len(best.audited)} installed packages audited, "
            "no known vulnerabilities"
        )
        if best.skipped:
            names = ", ".join(sorted(best.skipped)[:15]) + (" ..." if len(best.skipped) > 15 else "")
            text += f"; {len(best.skipped)} NOT audited: {names} ({_why_skipped(best)})"
        return 0, text
    lines.append("DEPENDENCY AUDIT NOT DONE: pip-audit could audit none of the installed packages.")
    for audit in audits:
        if audit.failure:
            lines.append(f"  {audit.service}: the run failed: {audit.failure}")
        else:
            lines.append(
                f"  {audit.service}: all {len(audit.skipped)} packages skipped: {_why_skipped(audit)}"
            )
    lines.append(
        "  Nothing is known about vulnerabilities in these versions. Run `make audit` where pip-audit "
        "reaches pypi.org/pypi/<name>/<version>/json or api.osv.dev."
    )
    return (2 if strict else 0), "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="fail (exit 2) when nothing could be audited")
    parser.add_argument("--service", choices=("auto", "pypi", "osv"), default="auto")
    parser.add_argument("--osv-url", default=None, help="an OSV-compatible /v1/query endpoint")
    args = parser.parse_args(argv)
    services = ["pypi", "osv"] if args.service == "auto" else [args.service]
    audits: list[Audit] = []
    for service in services:
        audits.append(run_pip_audit(service, args.osv_url))
        if audits[-1].audited or audits[-1].vulns:
            break
    code, text = verdict(audits, strict=args.strict)
    print(text, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
