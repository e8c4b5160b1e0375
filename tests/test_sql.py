"""Statement normalisation: values out, names and shape kept, bounded cache."""

from __future__ import annotations

import pytest

from otel_slowstack import sql

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "statement, expected",
    [
        ("SELECT name FROM customers WHERE id = 17", "SELECT name FROM customers WHERE id = ?"),
        ("SELECT * FROM t WHERE a = 'it''s' AND b = 'x'", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT * FROM t WHERE a = E'x\\'y' AND b = N'z'", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT $$a 'quoted' body$$, $fn$ x $$ y $fn$", "SELECT ?, ?"),
        ("SELECT 1.5, .5, 3e-7, 0x1F, 42", "SELECT ?, ?, ?, ?, ?"),
        ("SELECT a FROM t WHERE b = %s AND c = %(name)s", "SELECT a FROM t WHERE b = ? AND c = ?"),
        ("SELECT a FROM t WHERE b = $1 AND c = $2", "SELECT a FROM t WHERE b = ? AND c = ?"),
        ("SELECT a FROM t WHERE b = :name AND c = :1 AND d = ?", "SELECT a FROM t WHERE b = ? AND c = ? AND d = ?"),
        ("SELECT id FROM t WHERE id IN (1, 2, 3, 4)", "SELECT id FROM t WHERE id IN (?)"),
        ("SELECT id FROM t WHERE id IN (%s,%s , %s)", "SELECT id FROM t WHERE id IN (?)"),
        ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'),(3,'z')", "INSERT INTO t (a, b) VALUES (?)"),
        ("SELECT * FROM t WHERE a = ANY(ARRAY[1, 2])", "SELECT * FROM t WHERE a = ANY(ARRAY[?])"),
        ("SELECT  a,\n\tb\n FROM   t", "SELECT a, b FROM t"),
        ("SELECT 1 /*traceparent='00-abc-def-01'*/", "SELECT ?"),
        ("SELECT 1 -- the answer\nFROM t", "SELECT ? FROM t"),
    ],
)
def test_values_become_placeholders(statement: str, expected: str) -> None:
    assert sql.normalize(statement) == expected


@pytest.mark.parametrize(
    "statement",
    [
        'SELECT "Order"."id", "t2"."col_3" FROM "Order"',  # quoted identifiers are names
        "SELECT `select`, col1 FROM table2",
        "SELECT t1.c2, x_10 FROM t1",  # digits inside names
        "SELECT a::int, b::text FROM t",  # casts are not named placeholders
    ],
)
def test_names_stay(statement: str) -> None:
    assert sql.normalize(statement) == statement


def test_statements_differing_only_in_values_are_one() -> None:
    texts = [
        "SELECT * FROM orders WHERE customer = 'ann' AND total > 10 AND id IN (1, 2)",
        "SELECT * FROM orders WHERE customer = 'bob' AND total > 99.5 AND id IN (7, 8, 9, 10)",
        "SELECT * FROM orders  WHERE customer = 'o''neil' AND total > 0 AND id IN (3)",
    ]
    assert len({sql.normalize(t) for t in texts}) == 1
    assert sql.normalize(texts[0]) != sql.normalize("SELECT * FROM orders WHERE customer = 'ann'")


def test_no_literal_survives() -> None:
    secret = "SELECT * FROM users WHERE email = 'ann@example.com' AND password = 'hunter2' AND pin = 4711"
    text = sql.normalize(secret)
    for value in ("ann@example.com", "hunter2", "4711"):
        assert value not in text


def test_unterminated_text_is_still_deterministic() -> None:
    broken = "SELECT 'never closed, FROM t WHERE a = 1"
    assert sql.normalize(broken) == sql.normalize(broken) == "SELECT ?"
    assert sql.normalize('SELECT "open') == 'SELECT "open'


def test_long_statements_are_cut() -> None:
    huge = "SELECT " + ", ".join(f"col{i}" for i in range(5000)) + " FROM t"
    text = sql.normalize(huge)
    assert len(text) <= sql.MAX_STATEMENT_CHARS
    assert text.startswith("SELECT col0, col1")
    assert sql.normalized(huge) == text


def test_cache_is_bounded_and_reused() -> None:
    for i in range(sql.CACHE_SIZE + 500):
        sql.normalized(f"SELECT {i} AS c{i}")
    assert sql.cache_size() <= sql.CACHE_SIZE
    statement = "SELECT name FROM cached WHERE id = 1"
    first = sql.normalized(statement)
    hits = sql._normalized.cache_info().hits
    assert sql.normalized(statement) is first
    assert sql._normalized.cache_info().hits == hits + 1


def test_abbreviate_keeps_both_ends() -> None:
    assert sql.abbreviate("SELECT 1") == "SELECT 1"
    text = "SELECT a, b, c, d, e, f, g, h FROM accounts WHERE id = ? FOR UPDATE"
    shortened = sql.abbreviate(text, 40)
    assert len(shortened) <= 40
    assert shortened.startswith("SELECT a, b, c")
    assert shortened.endswith("FOR UPDATE")
    assert " ... " in shortened
