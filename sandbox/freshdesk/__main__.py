"""`python -m sandbox.freshdesk`: a seeded Freshdesk sandbox on loopback until Ctrl-C or SIGTERM."""

from __future__ import annotations

from sandbox.base import CONTROL, sandbox_arguments, serve_until_stopped
from sandbox.freshdesk.common import DEFAULT_RATE_LIMIT, PLAN_TICKET_UPDATE_LIMITS
from sandbox.freshdesk.seed import seed as seed_data
from sandbox.freshdesk.server import FreshdeskSandbox


def main(argv: list[str] | None = None) -> int:
    """Run a seeded sandbox until interrupted; prints the base URL and the credentials to use."""
    parser = sandbox_arguments("Freshdesk", port=8766, people="contacts")
    parser.add_argument("--api-key", default="sandbox-api-key")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT, help="API credits per minute")
    parser.add_argument(
        "--endpoint-limits", action="store_true", help="enforce the plan's ticket-update limit (default: off)"
    )
    parser.add_argument("--plan", choices=sorted(PLAN_TICKET_UPDATE_LIMITS), default="enterprise")
    args = parser.parse_args(argv)

    sandbox = FreshdeskSandbox(
        args.api_key,
        rate_limit_per_minute=args.rate_limit,
        endpoint_limits=args.endpoint_limits,
        plan=args.plan,
    )
    summary = seed_data(sandbox, customers=args.customers, seed=args.seed) if args.customers > 0 else None
    url = sandbox.start(args.host, args.port)
    print(f"Freshdesk sandbox listening on {url}")
    print(f"  auth: HTTP Basic, username '{args.api_key}' (the API key), password 'X'")
    if summary is not None:
        print(
            f"  seeded {summary.customers} contacts, {summary.organizations} companies, "
            f"{summary.tickets} tickets (seed {args.seed})"
        )
    print(f"  automation rules: POST {url}{CONTROL}/automations; deliveries: GET {url}{CONTROL}/deliveries")
    return serve_until_stopped(sandbox)


if __name__ == "__main__":
    raise SystemExit(main())
