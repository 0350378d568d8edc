"""`python -m sandbox.zendesk`: a seeded Zendesk sandbox on loopback until Ctrl-C or SIGTERM."""

from __future__ import annotations

from sandbox.base import CONTROL, sandbox_arguments, serve_until_stopped
from sandbox.zendesk.seed import seed as seed_data
from sandbox.zendesk.server import ZendeskSandbox


def main(argv: list[str] | None = None) -> int:
    """Run a seeded sandbox until interrupted; prints the base URL and the credentials to use."""
    parser = sandbox_arguments("Zendesk", port=8765, people="customers")
    parser.add_argument("--email", default="agent@example.com")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute (default: none)")
    parser.add_argument("--incremental-rate-limit", type=int, default=None)
    parser.add_argument("--webhook-retry-delay", type=float, default=0.5)
    parser.add_argument(
        "--endpoint-limits",
        action="store_true",
        help="enforce Zendesk's endpoint limits (Update Ticket 100/min, incremental exports 10/min, "
        "Update Organization 5/min, 30 updates per ticket per user per 10 min); default: off",
    )
    parser.add_argument("--high-volume", action="store_true", help="the High Volume add-on's endpoint limits")
    args = parser.parse_args(argv)

    sandbox = ZendeskSandbox(
        email=args.email,
        token=args.token,
        rate_limit_per_minute=args.rate_limit,
        incremental_limit_per_minute=args.incremental_rate_limit,
        webhook_retry_delay=args.webhook_retry_delay,
        endpoint_limits=args.endpoint_limits,
        high_volume=args.high_volume,
    )
    summary = seed_data(sandbox, customers=args.customers, seed=args.seed) if args.customers > 0 else None
    url = sandbox.start(args.host, args.port)
    print(f"Zendesk sandbox listening on {url}")
    print(f"  auth: HTTP Basic, username '{args.email}/token', password '{args.token}'")
    if summary is not None:
        print(
            f"  seeded {summary.customers} customers, {summary.organizations} organizations, "
            f"{summary.tickets} tickets (seed {args.seed})"
        )
        print(f"  VIP list: {', '.join(summary.vip_emails) or '-'}")
    print(f"  controls: POST {url}{CONTROL}/faults | /delay, GET {url}{CONTROL}/deliveries | /requests")
    print(f"  endpoint limits: {'on' if args.endpoint_limits else 'off'} ({url}{CONTROL}/endpoint_limits)")
    return serve_until_stopped(sandbox)


if __name__ == "__main__":
    raise SystemExit(main())
