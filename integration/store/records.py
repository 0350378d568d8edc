"""Customers, organizations and purchases as the sources sent them, and the reads over them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from integration.core import keys
from integration.core.models import Customer, Organization, Purchase
from integration.store.connection import Connection, _dt, _iso, _json


class RecordsStore(Connection):
    """The customers, organizations and purchases tables (and their identity-merged views)."""

    def upsert_customers(self, customers: Iterable[Customer]) -> int:
        now = _iso(datetime.now(UTC))
        rows = [
            {
                "key": c.key,
                "source": c.source,
                "external_id": c.external_id,
                "email": c.email,
                "name": c.name,
                "organization_key": c.organization_key,
                "tags": _json(list(c.tags)),
                "attributes": _json(dict(c.attributes)),
                "created_at": _iso(c.created_at),
                "updated_at": _iso(c.updated_at),
                "synced_at": now,
                "active": int(c.active),
            }
            for c in customers
        ]
        with self.transaction() as db:
            db["customers"].upsert_all(rows, pk="key")
        return len(rows)

    def upsert_organizations(self, organizations: Iterable[Organization]) -> int:
        now = _iso(datetime.now(UTC))
        rows = [
            {
                "key": o.key,
                "source": o.source,
                "external_id": o.external_id,
                "name": o.name,
                "domains": _json(list(o.domains)),
                "tags": _json(list(o.tags)),
                "attributes": _json(dict(o.attributes)),
                "created_at": _iso(o.created_at),
                "updated_at": _iso(o.updated_at),
                "synced_at": now,
            }
            for o in organizations
        ]
        with self.transaction() as db:
            db["organizations"].upsert_all(rows, pk="key")
        return len(rows)

    @staticmethod
    def _customer(row: dict[str, Any]) -> Customer:
        org_key = row["organization_key"]
        return Customer(
            source=row["source"],
            external_id=row["external_id"],
            email=row["email"],
            name=row["name"],
            organization_id=keys.external_id(org_key) if org_key else None,
            tags=tuple(json.loads(row["tags"])),
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            attributes=json.loads(row["attributes"]),
            active=bool(row["active"]),
        )

    @staticmethod
    def _organization(row: dict[str, Any]) -> Organization:
        return Organization(
            source=row["source"],
            external_id=row["external_id"],
            name=row["name"],
            domains=tuple(json.loads(row["domains"])),
            tags=tuple(json.loads(row["tags"])),
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            attributes=json.loads(row["attributes"]),
        )

    def get_customer(self, key: str) -> Customer | None:
        rows = list(self.db.query("SELECT * FROM customers_merged WHERE key = ?", [key]))
        return self._customer(rows[0]) if rows else None

    def get_organization(self, key: str) -> Organization | None:
        rows = list(self.db.query("SELECT * FROM organizations_merged WHERE key = ?", [key]))
        return self._organization(rows[0]) if rows else None

    def iter_customers(self) -> Iterator[Customer]:
        for row in self.db.query(
            "SELECT * FROM customers_merged WHERE (role IS NULL OR role = 'primary') AND active = 1 "
            "ORDER BY key"
        ):
            yield self._customer(row)

    def organizations_by_key(self) -> dict[str, Organization]:
        return {
            row["key"]: self._organization(row) for row in self.db.query("SELECT * FROM organizations_merged")
        }

    def customer_counts(self) -> dict[str, int]:
        """Customers per source, as segments count them: one row per person (docs/architecture.md,
        "Identity"); CRM and file records linked into another record, or held back by a conflict, are
        not customers of their own."""
        return {
            row[0]: int(row[1])
            for row in self.db.conn.execute(
                "SELECT source, count(*) FROM customer_population GROUP BY source"
            )
        }

    def customer_count(self) -> int:
        """The number every report calls "customers" (see customer_counts)."""
        return sum(self.customer_counts().values())

    def upsert_purchases(self, purchases: Iterable[Purchase]) -> int:
        """Replace each purchase's rows: one per customer or organization it counts for.

        A purchase that is no longer won (a deal reopened or lost) or has no amount is forgotten.
        """
        now = _iso(datetime.now(UTC))
        items = list(purchases)
        rows = [
            (p.key, party, p.source, float(p.amount), _iso(p.closed_at), now)
            for p in items
            if p.won and p.amount is not None
            for party in dict.fromkeys(p.party_keys)
        ]
        with self.transaction() as db:
            db.conn.executemany("DELETE FROM purchases WHERE key = ?", [(p.key,) for p in items])
            db.conn.executemany(
                "INSERT INTO purchases (key, party_key, source, amount, closed_at, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(items)

    _SWEEP_SQL = {
        stream: f"DELETE FROM {table} WHERE source = ? AND key NOT IN (SELECT key FROM temp.keep)"  # noqa: S608
        for stream, table in (
            ("users", "customers"),
            ("organizations", "organizations"),
            ("purchases", "purchases"),
        )
    }

    def sweep(self, source: str, stream: str, keep: Iterable[str]) -> int:
        """After a complete pull of a snapshot (a CSV file, a full CRM pull), forget what it no longer has."""
        sql = self._SWEEP_SQL.get(stream)
        if sql is None:
            return 0
        with self.transaction() as db:
            conn = db.conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep (key TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM temp.keep")
            conn.executemany("INSERT OR IGNORE INTO temp.keep VALUES (?)", ((k,) for k in keep))
            removed = conn.execute(sql, (source,)).rowcount
            conn.execute("DELETE FROM temp.keep")
        return removed

    def purchase_totals(self, now: datetime) -> dict[str, dict[str, float | int]]:
        """revenue_12m, lifetime_value, purchases_12m and last_purchase_days per customer/organization key."""
        since = _iso(now - timedelta(days=365))
        out: dict[str, dict[str, float | int]] = {}
        for party, revenue, lifetime, count, last in self.db.conn.execute(
            "SELECT party_key, sum(CASE WHEN closed_at >= ? THEN amount ELSE 0 END), sum(amount), "
            "sum(closed_at >= ?), max(closed_at) FROM purchases GROUP BY party_key",
            (since, since),
        ):
            totals: dict[str, float | int] = {
                "revenue_12m": round(revenue, 2),
                "lifetime_value": round(lifetime, 2),
                "purchases_12m": int(count or 0),
            }
            last_at = _dt(last)
            if last_at is not None:
                totals["last_purchase_days"] = max(0, (now - last_at).days)
            out[party] = totals
        return out

    def source_records(self) -> tuple[list[Customer], list[Organization]]:
        """Every stored customer and organization as its source sent it (no identity overlay)."""
        return (
            [self._customer(row) for row in self.db.query("SELECT * FROM customers ORDER BY key")],
            [self._organization(row) for row in self.db.query("SELECT * FROM organizations ORDER BY key")],
        )

    def search_customers(self, query: str, limit: int = 20) -> list[Customer]:
        """Customers whose id, key or external id is `query`, or whose email or name contains it.

        One result per customer, merged as segments see them: a CRM record linked into a helpdesk user
        finds that user (once, however many of the person's records match); held records find nobody.
        """
        text = query.strip()
        if not text:
            return []
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.query(
            "WITH hits AS ("
            " SELECT CASE WHEN i.role = 'linked' THEN i.entity_key ELSE c.key END AS key,"
            " (c.key = :q OR c.external_id = :q OR lower(c.email) = lower(:q)) AS exact"
            " FROM customers c LEFT JOIN identities i ON i.record_key = c.key"
            " WHERE (i.role IS NULL OR i.role != 'held')"
            " AND (c.key = :q OR c.external_id = :q OR lower(c.email) = lower(:q)"
            " OR lower(c.email) LIKE :like ESCAPE '\\' OR lower(c.name) LIKE :like ESCAPE '\\'))"
            " SELECT p.* FROM customer_population p"
            " JOIN (SELECT key, max(exact) AS exact FROM hits GROUP BY key) h ON h.key = p.key"
            " ORDER BY h.exact DESC, p.email, p.key LIMIT :limit",
            {"q": text, "like": like, "limit": limit},
        )
        return [self._customer(row) for row in rows]

    # -- tag sync: the tags each record holds at its source ------------------------------------------

    def tag_state(self, kind: str) -> list[tuple[str, str, str, tuple[str, ...], dict[str, str | None]]]:
        """(key, source, external id, tags the source holds, {dimension: label}) for users or organizations.

        A CRM record linked to a helpdesk customer carries that person's (or organization's) labels.
        Inactive people are left out: they are no customers, and a write to them is wasted.
        """
        table, segments, key_column = {
            "users": ("customers", "segments", "customer_key"),
            "organizations": ("organizations", "organization_segments", "organization_key"),
        }[kind]
        labels: dict[str, dict[str, str | None]] = {}
        for row in self.db.conn.execute(
            f"SELECT {key_column}, dimension, label FROM {segments}"  # noqa: S608 - fixed names above
        ):
            labels.setdefault(row[0], {})[row[1]] = row[2]
        return [
            (row[0], row[1], row[2], tuple(json.loads(row[3])), labels.get(row[4], {}))
            for row in self.db.conn.execute(
                "SELECT r.key, r.source, r.external_id, r.tags, "  # noqa: S608 - fixed names above
                "CASE WHEN i.role IN ('primary', 'linked') THEN i.entity_key ELSE r.key END "
                f"FROM {table} r LEFT JOIN identities i ON i.record_key = r.key "
                f"{'WHERE r.active = 1 ' if table == 'customers' else ''}ORDER BY r.key"
            )
        ]

    def set_tags(self, kind: str, tags: dict[str, tuple[str, ...]]) -> None:
        """Record what the helpdesk now holds after a push, so the next diff starts from it."""
        table = {"users": "customers", "organizations": "organizations"}[kind]
        with self.transaction() as db:
            db.conn.executemany(
                f"UPDATE {table} SET tags = ? WHERE key = ?",  # noqa: S608 - fixed names above
                [(_json(list(v)), k) for k, v in tags.items()],
            )
