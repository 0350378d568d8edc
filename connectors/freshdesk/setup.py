"""`tierdesk setup freshdesk`: Freshdesk has no API for automation rules, so we print the rule to create.

Everything in the text comes from connectors/freshdesk/webhooks.py (header names, the JSON body), so the
printed rule always matches what the webhook gate checks.
"""

from __future__ import annotations

from connectors.freshdesk import webhooks as freshdesk


def instructions(endpoint: str, sla_names: list[str]) -> str:
    """The automation rule (and SLA policies) an admin creates by hand, as numbered steps."""
    lines = [
        "Freshdesk: Admin > Workflows > Automations > Ticket Creation > New rule",
        "  Name: tierdesk: route new tickets",
        "  When: any ticket is created (no conditions)",
        "  Action: Trigger webhook",
        f"    Request type: POST    URL: {endpoint}",
        "    Requires authentication: no (the secret travels in a header)",
        "    Custom headers:",
        f"      {freshdesk.SECRET_HEADER}: <the value of TIERDESK_FRESHDESK_WEBHOOK_SECRET>",
        f"      {freshdesk.RULE_HEADER}: {freshdesk.DEFAULT_RULE}",
        "    Encoding: JSON, Advanced, with this content:",
        *("      " + line for line in freshdesk.AUTOMATION_BODY.splitlines()),
        "",
        "SLA: tierdesk writes due_by / fr_due_by from the mapping's `slas:` targets on each ticket.",
        "To let Freshdesk's own SLA policies apply instead, create one policy per SLA name and have it",
        "apply to the companies (or groups) tierdesk routes to that SLA:",
        *(f"  - {name}" for name in sla_names),
    ]
    return "\n".join(lines)
