"""CSV/JSON exports as a source: the mapping, type checks with line numbers, idempotent re-imports.

Why: a billing export is typed by hand or by a script nobody maintains. A bad cell must stop the import
with the file, line and column, never become a zero; importing the same file twice must change nothing;
and a row removed from the export must stop counting as revenue.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.csvfile import CsvError, CsvFileConnector, load_mapping, parse
from integration.core.identity import Rules
from integration.core.models import Customer
from integration.pull import pull, resolve_identities
from integration.runtime import Runtime
from integration.settings import Settings, SettingsError
from integration.store import Store

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BILLING = """\
invoice,email,revenue,paid_on
i-1,Ana@Example.com,1000.50,2026-05-01
i-2,ana@example.com,"1,200",2026-04-01
i-3,ben@example.com,300,2024-01-15
"""


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "csv-mapping.yaml"
    path.write_text(text)
    return path


BILLING_MAPPING = """\
files:
  billing:
    path: billing.csv
    kind: purchases
    columns: {id: invoice, email: email, amount: revenue, date: paid_on}
"""


@pytest.fixture
def billing(tmp_path: Path) -> CsvFileConnector:
    (tmp_path / "billing.csv").write_text(BILLING)
    (spec,) = load_mapping(_mapping(tmp_path, BILLING_MAPPING))
    return CsvFileConnector(spec)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "csv.db")


def _dump(store: Store) -> dict[str, list[tuple]]:
    return {
        "customers": [
            tuple(r)
            for r in store.db.conn.execute(
                "SELECT key, email, name, attributes, tags FROM customers ORDER BY key"
            )
        ],
        "purchases": [
            tuple(r)
            for r in store.db.conn.execute(
                "SELECT key, party_key, amount, closed_at FROM purchases ORDER BY key"
            )
        ],
    }


def test_purchases_become_customers_and_revenue(billing: CsvFileConnector, store: Store) -> None:
    assert pull(store, billing) == {"users": 2, "purchases": 3}
    ana = store.get_customer("billing:user:ana@example.com")
    assert ana is not None
    assert ana.email == "Ana@Example.com"
    resolve_identities(store, now=NOW)
    ana = store.get_customer("billing:user:ana@example.com")
    assert ana.attributes == {
        "revenue_12m": 2200.5,
        "lifetime_value": 2200.5,
        "purchases_12m": 2,
        "last_purchase_days": 31,
    }
    ben = store.get_customer("billing:user:ben@example.com")
    assert ben.attributes["revenue_12m"] == 0
    assert ben.attributes["lifetime_value"] == 300


def test_the_same_file_twice_changes_nothing(billing: CsvFileConnector, store: Store) -> None:
    pull(store, billing)
    before = _dump(store)
    synced = store.db.conn.execute("SELECT group_concat(synced_at) FROM customers").fetchone()
    assert pull(store, billing) == {"users": 0, "purchases": 0}
    assert _dump(store) == before
    assert store.db.conn.execute("SELECT group_concat(synced_at) FROM customers").fetchone() == synced
    assert pull(store, billing, full=True) == {"users": 2, "purchases": 3}  # read again on --full
    assert _dump(store) == before


def test_a_changed_file_updates_rows_and_forgets_removed_ones(
    billing: CsvFileConnector, store: Store, tmp_path: Path
) -> None:
    pull(store, billing)
    (tmp_path / "billing.csv").write_text(
        BILLING.replace("1000.50", "900").replace("i-3,ben@example.com,300,2024-01-15\n", "")
    )
    assert pull(store, billing) == {"users": 1, "purchases": 2}
    assert store.get_customer("billing:user:ben@example.com") is None
    amounts = dict(store.db.conn.execute("SELECT key, amount FROM purchases").fetchall())
    assert amounts == {"billing:purchase:i-1": 900.0, "billing:purchase:i-2": 1200.0}


def test_bad_cells_are_reported_with_file_line_and_column(tmp_path: Path) -> None:
    rows = ["invoice,email,revenue,paid_on"] + [
        f"i-{n},c{n}@example.com,{n},2026-01-01" for n in range(2, 16)
    ]
    rows.insert(15, 'i-x,"multi\nline@example.com",5,2026-01-01')  # a quoted cell spanning two lines
    rows += ["i-17,d@example.com,abc,2026-01-01", "i-18,e@example.com,10,01/02/2026", "i-19,,3,2026-01-01"]
    (tmp_path / "billing.csv").write_text("\n".join(rows) + "\n")
    (spec,) = load_mapping(_mapping(tmp_path, BILLING_MAPPING))
    with pytest.raises(CsvError) as raised:
        pull(Store(tmp_path / "x.db"), CsvFileConnector(spec))
    assert str(raised.value).splitlines() == [
        "billing.csv:18: column revenue: 'abc' is not a number",
        "billing.csv:19: column paid_on: '01/02/2026' is not a date (an ISO 8601 date)",
        "billing.csv:20: column email: value is missing",
    ]


def test_a_mapped_column_missing_from_the_header_is_named(tmp_path: Path) -> None:
    (tmp_path / "billing.csv").write_text("invoice,mail,revenue,paid_on\n")
    (spec,) = load_mapping(_mapping(tmp_path, BILLING_MAPPING))
    with pytest.raises(
        CsvError, match=r"billing.csv:1: column\(s\) 'email' not in the header \(it has: invoice, mail"
    ):
        parse(spec, spec.path.read_bytes())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("files: {}\n", "files: expected"),
        (
            "files:\n  zendesk: {path: a.csv, kind: customers, columns: {email: e}}\n",
            "files.zendesk: a source name",
        ),
        (
            "files:\n  b: {path: a.csv, kind: invoices, columns: {email: e}}\n",
            "files.b.kind: expected one of",
        ),
        ("files:\n  b: {path: a.csv, kind: purchases, columns: {email: e, amount: a}}\n", "date is required"),
        ("files:\n  b: {path: a.csv, kind: customers, columns: {name: n}}\n", "id or email is required"),
        (
            "files:\n  b: {path: a.csv, kind: customers, columns: {email: e, revenue: r}}\n",
            "revenue not used",
        ),
        (
            "files:\n  b: {path: a.csv, kind: customers, columns: {email: e},"
            " attributes: {x: {column: x, type: money}}}\n",
            "files.b.attributes.x.type",
        ),
        (
            "files:\n  b: {path: a.csv, kind: customers, columns: {email: e}, sheet: 2}\n",
            "unknown key(s) sheet",
        ),
        ("files: [\n", "not valid YAML"),
    ],
)
def test_mapping_errors_name_the_file_and_key(tmp_path: Path, text: str, complaint: str) -> None:
    path = _mapping(tmp_path, text)
    with pytest.raises(CsvError) as raised:
        load_mapping(path)
    assert str(raised.value).startswith(str(path))
    assert complaint in str(raised.value)


def test_customer_exports_with_typed_attributes_link_by_id_and_email(tmp_path: Path, store: Store) -> None:
    (tmp_path / "crm.json").write_text(
        json.dumps(
            [
                {
                    "id": "c1",
                    "mail": "ana@example.com",
                    "refs": "3",
                    "vip": "yes",
                    "zd": None,
                    "since": "2019-05-01",
                },
                {"id": "c2", "mail": "other@example.com", "refs": 1, "vip": "no", "zd": "77", "since": None},
            ]
        )
    )
    mapping = """\
files:
  crm:
    path: crm.json
    kind: customers
    columns: {id: id, email: mail, created_at: since}
    attributes:
      referrals: {column: refs, type: integer}
      vip: {column: vip, type: boolean}
      zendesk_id: zd
"""
    (spec,) = load_mapping(_mapping(tmp_path, mapping))
    store.upsert_customers(
        [
            Customer("zendesk", "1", email="ANA@example.com", attributes={"referrals": 9}),
            Customer("zendesk", "77", email="bob@example.com", created_at=NOW - timedelta(days=10)),
        ]
    )
    assert pull(store, CsvFileConnector(spec)) == {"users": 2}
    resolve_identities(store, Rules(precedence=("crm",)), now=NOW)
    ana = store.get_customer("zendesk:user:1")
    assert ana.attributes["referrals"] == 3  # the CRM export outranks the helpdesk's field
    assert ana.attributes["vip"] is True
    assert ana.created_at == datetime(2019, 5, 1, tzinfo=UTC)
    bob = store.get_customer("zendesk:user:77")  # linked through zendesk_id, not email
    assert bob.attributes["referrals"] == 1
    assert [c.key for c in store.iter_customers()] == ["zendesk:user:1", "zendesk:user:77"]


def test_json_lines_errors_have_line_numbers(tmp_path: Path) -> None:
    good = {"who": "a@x.example", "eur": 5, "at": "2026-01-01"}
    bad = {"who": "b@x.example", "eur": "five", "at": "2026-01-02"}
    (tmp_path / "pay.jsonl").write_text(f"{json.dumps(good)}\n\n{json.dumps(bad)}\n")
    columns = "{email: who, amount: eur, date: at}"
    mapping = f"files:\n  pay:\n    path: pay.jsonl\n    kind: purchases\n    columns: {columns}\n"
    (spec,) = load_mapping(_mapping(tmp_path, mapping))
    with pytest.raises(CsvError, match=r"^pay.jsonl:3: column eur: 'five' is not a number$"):
        parse(spec, spec.path.read_bytes())


def test_european_numbers_dates_and_rows_without_ids(tmp_path: Path) -> None:
    (tmp_path / "eu.csv").write_text(
        "kunde;betrag;datum\na@x.example;1.234,50;03.02.2026\na@x.example;1.234,50;03.02.2026\n"
    )
    mapping = """\
files:
  eu:
    path: eu.csv
    kind: purchases
    delimiter: ";"
    decimal: ","
    date_format: "%d.%m.%Y"
    columns: {email: kunde, amount: betrag, date: datum}
"""
    (spec,) = load_mapping(_mapping(tmp_path, mapping))
    parsed = parse(spec, spec.path.read_bytes())
    assert [p.amount for p in parsed.purchases] == [1234.5, 1234.5]
    assert parsed.purchases[0].closed_at == datetime(2026, 2, 3, tzinfo=UTC)
    assert len({p.external_id for p in parsed.purchases}) == 2  # two identical payments stay two
    assert parse(spec, spec.path.read_bytes()) == parsed  # and get the same ids next time


def test_runtime_builds_a_connector_per_file_and_refuses_a_broken_mapping(
    tmp_path: Path, settings: Settings, billing: CsvFileConnector
) -> None:
    runtime = Runtime.from_settings(replace(settings, csv_mapping=str(tmp_path / "csv-mapping.yaml")))
    try:
        assert isinstance(runtime.connectors["billing"], CsvFileConnector)
        assert runtime.store.identity_rules.precedence == ("billing", "hubspot")
    finally:
        runtime.store.close()
    broken = _mapping(tmp_path, "files:\n  b: {path: a.csv, kind: nope, columns: {}}\n")
    with pytest.raises(SettingsError, match="TIERDESK_CSV_MAPPING: .*csv-mapping.yaml: files.b.kind"):
        Runtime.from_settings(replace(settings, csv_mapping=str(broken)))
