"""The schema tracker: CREATE TABLE values, ALTER, the tracker registry, optimistic join."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kdm.errors import KdmError
from kdm.schema_tracker import Column, TableSchema, Tracker, apply, compare, join
from kdm.schema_types import canonical_type, widen_type

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema"


def statements(text: str) -> list[str]:
    """The `;`-terminated statements of a fixture text, comment lines removed."""
    text = re.sub(r"^--.*$", "", text, flags=re.MULTILINE)
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def cases(name: str) -> list[tuple[str, str]]:
    """(title, body) of each `-- case:` block of a fixture file."""
    blocks = re.split(r"^-- case: ", (FIXTURES / name).read_text(), flags=re.MULTILINE)[1:]
    return [(b.partition("\n")[0], b.partition("\n")[2]) for b in blocks]


def table(sql: str, schema: str = "db") -> TableSchema:
    return TableSchema.from_create(sql, schema)


def raises_code(code: int, action: Callable[[], object]) -> KdmError:
    with pytest.raises(KdmError) as caught:
        action()
    assert caught.value.code == code, str(caught.value)
    return caught.value


# --- TableSchema ---------------------------------------------------------------------------

CREATES = statements((FIXTURES / "create.sql").read_text())


@pytest.mark.parametrize("sql", CREATES, ids=[f"create{i}" for i in range(len(CREATES))])
def test_create_round_trips_through_to_create_and_dict(sql: str) -> None:
    parsed = table(sql)
    assert table(parsed.to_create(), parsed.schema) == parsed
    assert table(parsed.to_create(qualified=True), "elsewhere") == parsed
    assert TableSchema.from_dict(json.loads(json.dumps(parsed.to_dict()))) == parsed


def test_create_reads_columns_keys_and_options() -> None:
    t = table(CREATES[0])
    assert (t.schema, t.table, t.charset, t.collation) == ("db", "sbtest", "utf8mb4",
                                                           "utf8mb4_bin")
    assert [c.name for c in t.columns] == ["id", "k", "c", "pad"]
    id_, k, c, _ = t.columns
    assert (id_.type, id_.nullable, id_.auto_increment) == ("int(11)", False, True)
    assert (k.default, k.default_expr) == ("0", False)
    assert (c.type, c.charset, c.collation, c.default) == ("char(120)", "utf8mb4",
                                                           "utf8mb4_bin", "")
    assert t.primary_key == ("id",)
    assert t.other_indexes == {"k_1": ("k",)} and t.unique_keys == {}


@pytest.mark.parametrize(("written", "text", "unsigned"), [
    ("INT(11)", "int(11)", False), ("integer", "int", False),
    ("bigint(20) unsigned", "bigint(20)", True),
    ("tinyint unsigned zerofill", "tinyint", True), ("bool", "tinyint(1)", False),
    ("decimal", "decimal(10,0)", False), ("numeric(5)", "decimal(5,0)", False),
    ("decimal(65,30) unsigned", "decimal(65,30)", True), ("float(30)", "double", False),
    ("float(10)", "float", False), ("double(10,2)", "double(10,2)", False),
    ("char", "char(1)", False), ("bit", "bit(1)", False), ("timestamp(3)", "timestamp(3)", False),
    ("datetime", "datetime", False), ("VARCHAR(300)", "varchar(300)", False),
    ("nchar(3)", "char(3)", False), ("enum('a','B','it''s')", "enum('a','B','it''s')", False),
    ("set('x')", "set('x')", False), ("mediumblob", "mediumblob", False), ("json", "json", False),
])
def test_types_read_as_show_create_table_prints_them(written: str, text: str,
                                                     unsigned: bool) -> None:
    column = table(f"CREATE TABLE t (c {written})").columns[0]
    assert (column.type, column.unsigned) == (text, unsigned)


@pytest.mark.parametrize(("clause", "default", "is_expr"), [
    ("int DEFAULT -1", "-1", False), ("int DEFAULT NULL", None, False),
    ("varchar(5) DEFAULT 'it''s'", "it's", False), ("tinyint DEFAULT TRUE", "1", False),
    ("datetime DEFAULT NOW()", "CURRENT_TIMESTAMP", True),
    ("datetime(3) DEFAULT current_timestamp(3)", "CURRENT_TIMESTAMP(3)", True),
    ("bit(1) DEFAULT b'1'", "b'1'", True), ("varchar(36) DEFAULT (uuid())", "(UUID())", True),
])
def test_defaults_keep_literals_apart_from_expressions(clause: str, default: str | None,
                                                       is_expr: bool) -> None:
    column = table(f"CREATE TABLE t (c {clause})").columns[0]
    assert (column.default, column.default_expr) == (default, is_expr)


def test_inline_keys_make_pk_columns_not_null_and_name_unique_keys() -> None:
    t = table("CREATE TABLE t (id int KEY, a int UNIQUE, b int, UNIQUE (a, b))")
    assert t.primary_key == ("id",) and t.column("ID") == Column("id", "int", nullable=False)
    assert t.unique_keys == {"a": ("a",), "a_2": ("a", "b")}


@pytest.mark.parametrize(("sql", "keys"), [
    ("CREATE TABLE t (a int, b int NOT NULL, PRIMARY KEY (a), UNIQUE KEY u (b))", ("a",)),
    ("CREATE TABLE t (a int, b int NOT NULL, UNIQUE KEY ua (a), UNIQUE KEY ub (b))", ("b",)),
    ("CREATE TABLE t (a int NOT NULL, b int, UNIQUE KEY uab (a, b))", ()),
    ("CREATE TABLE t (a int NOT NULL, KEY ka (a))", ()),
])
def test_key_columns_follow_dms_rule(sql: str, keys: tuple[str, ...]) -> None:
    assert table(sql).key_columns() == keys


def test_all_unique_keys_lists_pk_then_every_unique_key() -> None:
    t = table("CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a), UNIQUE KEY ub (b), "
              "UNIQUE KEY ubc (b, c), KEY kc (c))")
    assert t.all_unique_keys() == (("a",), ("b",), ("b", "c"))


@pytest.mark.parametrize(("sql", "code"), [
    ("ALTER TABLE t ADD COLUMN a int", 44002),
    ("CREATE TABLE t AS SELECT 1 AS a", 44002),
    ("CREATE TABLE t LIKE u", 44002),
    ("CREATE TABLE t (a int, A int)", 44005),
    ("CREATE TABLE t (a int, PRIMARY KEY (b))", 44004),
    ("CREATE TABLE t (a int, b varchar(3) BINARY)", 44002),
    ("CREATE TABLE t (a int, b uuid)", 44002),
    ("CREATE TABLE t (a int", 44001),
])
def test_from_create_refuses_what_it_cannot_read(sql: str, code: int) -> None:
    raises_code(code, lambda: table(sql))


def test_from_columns_builds_from_a_relay_record() -> None:
    columns = [
        {"name": "id", "type": "bigint", "unsigned": True, "nullable": False, "key": "PRI"},
        {"name": "v", "type": "varchar(10)", "unsigned": False, "nullable": True, "key": "",
         "charset": "utf8mb4"},
    ]
    t = Tracker.from_columns("db", "t", columns)
    assert t.primary_key == ("id",) and t.key_columns() == ("id",)
    assert (t.columns[0].type, t.columns[0].unsigned, t.columns[1].charset) == (
        "bigint", True, "utf8mb4")
    raises_code(44006, lambda: Tracker.from_columns("db", "t", [{"type": "int"}]))


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("columns"),
    lambda d: d["columns"][0].update(nullable="yes"),
    lambda d: d["columns"][0].update(colour="red"),
    lambda d: d["columns"][0].pop("type"),
    lambda d: d.update(primary={"name": "PRIMARY", "columns": [1]}),
])
def test_from_dict_refuses_damaged_data(damage: Callable[[dict[str, object]], object]) -> None:
    data = table("CREATE TABLE t (a int NOT NULL, PRIMARY KEY (a))").to_dict()
    damage(data)
    raises_code(44006, lambda: TableSchema.from_dict(data))


# --- apply ---------------------------------------------------------------------------------

ALTERS = cases("alter.sql")


@pytest.mark.parametrize(("title", "body"), ALTERS, ids=[t for t, _ in ALTERS])
def test_alter_fixture(title: str, body: str) -> None:
    before, _, after = body.partition("-- expect")
    create, *ddls = statements(before)
    result = table(create)
    for ddl in ddls:
        result = apply(result, ddl)
    assert result == table(statements(after)[0])


REFUSED = cases("refused.sql")


@pytest.mark.parametrize(("title", "body"), REFUSED, ids=[t for t, _ in REFUSED])
def test_refused_fixture(title: str, body: str) -> None:
    before, _, code = body.partition("-- error:")
    create, ddl = statements(before)
    original = table(create)
    raises_code(int(code.split()[0]), lambda: apply(original, ddl))


def test_refusal_message_reads_like_dms() -> None:
    t = table("CREATE TABLE tbl1 (id int NOT NULL, PRIMARY KEY (id))", "db1")
    err = raises_code(44002, lambda: apply(t, "ALTER TABLE `db1`.`tbl1` ADD COLUMN new_col INT "
                                              "UNIQUE"))
    assert err.message == ("cannot track DDL: ALTER TABLE `db1`.`tbl1` ADD COLUMN new_col INT "
                           "UNIQUE: unsupported add column 'new_col' constraint UNIQUE KEY when "
                           "altering 'db1.tbl1'")


# --- Tracker -------------------------------------------------------------------------------


def names(tracker: Tracker) -> list[tuple[str, str]]:
    return sorted((t.schema, t.table) for t in tracker)


def test_tracker_follows_create_like_rename_and_drop() -> None:
    tracker = Tracker()
    assert tracker.apply_ddl("db", "CREATE TABLE t (id int PRIMARY KEY, a int)") == (("db", "t"),)
    assert tracker.apply_ddl("db", "CREATE TABLE IF NOT EXISTS t (x int)") == ()
    tracker.apply_ddl("db", "CREATE TABLE db2.u LIKE t")
    tracker.apply_ddl("other", "CREATE TABLE IF NOT EXISTS db.v (LIKE db.t)")
    assert tracker.get("db2", "u") == tracker.require(("db", "t")).renamed("db2", "u")
    assert names(tracker) == [("db", "t"), ("db", "v"), ("db2", "u")]
    tracker.apply_ddl("db", "DROP TABLE IF EXISTS v, nothere")
    tracker.apply_ddl("db", "DROP DATABASE IF EXISTS db2")
    assert names(tracker) == [("db", "t")]


def test_rename_table_moves_pairs_left_to_right() -> None:
    tracker = Tracker([table("CREATE TABLE a (x int)"), table("CREATE TABLE b (y int)"),
                       table("CREATE TABLE stale (z int)")])
    changed = tracker.apply_ddl("db", "RENAME TABLE a TO tmp, b TO a, db.tmp TO b, "
                                      "nothere TO stale")
    assert tracker.require(("db", "a")).columns[0].name == "y"
    assert tracker.require(("db", "b")).columns[0].name == "x"
    assert ("db", "stale") not in tracker and ("db", "tmp") not in tracker
    assert set(changed) == {("db", n) for n in ("a", "tmp", "b", "nothere", "stale")}


def test_gh_ost_sequence() -> None:
    tracker = Tracker([table("CREATE TABLE test4 (id int NOT NULL, PRIMARY KEY (id))", "test")])
    for ddl in ("CREATE /* gh-ost */ TABLE `test`.`_test4_ghc` (id bigint, hint varchar(64))",
                "CREATE /* gh-ost */ TABLE `test`.`_test4_gho` LIKE `test`.`test4`",
                "ALTER /* gh-ost */ TABLE `test`.`_test4_gho` ADD COLUMN c11 int",
                "RENAME /* gh-ost */ TABLE `test`.`test4` TO `test`.`_test4_del`, "
                "`test`.`_test4_gho` TO `test`.`test4`",
                "DROP /* gh-ost */ TABLE IF EXISTS `test`.`_test4_del`, `test`.`_test4_ghc`"):
        tracker.apply_ddl("test", ddl)
    assert names(tracker) == [("test", "test4")]
    assert [c.name for c in tracker.require(("test", "test4")).columns] == ["id", "c11"]


def test_alter_table_rename_moves_the_entry() -> None:
    tracker = Tracker([table("CREATE TABLE t (x int)")])
    assert tracker.apply_ddl("db", "ALTER TABLE t ADD y int, RENAME TO db3.t3") == (
        ("db", "t"), ("db3", "t3"))
    assert names(tracker) == [("db3", "t3")]
    assert [c.name for c in tracker.require(("db3", "t3")).columns] == ["x", "y"]


@pytest.mark.parametrize("sql", [
    "TRUNCATE TABLE t", "CREATE DATABASE d", "ALTER DATABASE d CHARACTER SET utf8mb4",
    "CREATE VIEW v AS SELECT 1", "DROP VIEW v", "CREATE TEMPORARY TABLE t (z int)",
    "DROP TEMPORARY TABLE IF EXISTS t",
])
def test_statements_that_change_no_tracked_table(sql: str) -> None:
    tracker = Tracker([table("CREATE TABLE t (x int)")])
    before = tracker.to_dict()
    assert tracker.apply_ddl("db", sql) == ()
    assert tracker.to_dict() == before


@pytest.mark.parametrize(("sql", "code"), [
    ("ALTER TABLE nothere ADD COLUMN y int", 44003),
    ("CREATE INDEX i ON nothere (x)", 44003),
    ("CREATE TABLE u LIKE nothere", 44003),
    ("GRANT ALL ON *.* TO someone", 44002),
    ("CREATE TABLE u AS SELECT * FROM t", 44002),
    ("ALTER TABLE t ADD COLUMN y int, ADD COLUMN x int", 44005),
    ("CREATE TABLE a (x int); CREATE TABLE b (x int)", 44002),
    ("CREATE TABLE a (x int", 44001),
    ("ALTER TABLE t ADD COLUMN (", 44001),
])
def test_tracker_errors_leave_it_unchanged(sql: str, code: int) -> None:
    tracker = Tracker([table("CREATE TABLE t (x int)")])
    before = tracker.to_dict()
    raises_code(code, lambda: tracker.apply_ddl("db", sql))
    assert tracker.to_dict() == before


def test_operate_schema_get_set_remove() -> None:
    tracker = Tracker([table("CREATE TABLE t1 (c1 int NOT NULL, c2 int, PRIMARY KEY (c1))",
                             "db_single")])
    shown = tracker.require(("db_single", "t1")).to_create()
    assert shown.startswith("CREATE TABLE `t1` (\n  `c1` int NOT NULL,")
    replacement = table("CREATE TABLE whatever (c1 int NOT NULL, c2 bigint(11), "
                        "PRIMARY KEY (c1))", "x").renamed("db_single", "t1")
    tracker.set(replacement)
    assert tracker.get("db_single", "t1") == replacement
    assert tracker.remove("db_single", "t1") and not tracker.remove("db_single", "t1")
    raises_code(44003, lambda: tracker.require(("db_single", "t1")))


def test_tracker_dict_round_trip() -> None:
    tracker = Tracker([table(sql) for sql in CREATES[:3]] + [table(CREATES[3], "db9")])
    data = json.loads(json.dumps(tracker.to_dict()))
    restored = Tracker.from_dict(data)
    assert restored.to_dict() == data and len(restored) == len(tracker)
    raises_code(44006, lambda: Tracker.from_dict({"tables": "nope"}))


# --- join and compare ----------------------------------------------------------------------

SHARD = "CREATE TABLE {} (ID int NOT NULL, Name varchar(20), PRIMARY KEY (ID))"


def test_reference_worked_example() -> None:
    shards = {n: table(SHARD.format(n)) for n in ("tbl00", "tbl01", "tbl02")}
    steps = [("tbl00", "ADD COLUMN Level INT", ["ID", "Name", "Level"], -1),
             ("tbl01", "ADD COLUMN Level INT", ["ID", "Name", "Level"], 0),
             ("tbl01", "DROP COLUMN Name", ["ID", "Name", "Level"], 0),
             ("tbl02", "ADD COLUMN Level INT", ["ID", "Name", "Level"], 0),
             ("tbl00", "DROP COLUMN Name", ["ID", "Name", "Level"], 0),
             ("tbl02", "DROP COLUMN Name", ["ID", "Level"], 1)]
    joined = join(list(shards.values()))
    for shard, ddl, columns, moved in steps:
        shards[shard] = apply(shards[shard], f"ALTER TABLE {shard} {ddl}")
        new = join(list(shards.values()))
        assert [c.name for c in new.columns] == columns, ddl
        assert compare(joined, new) == moved, ddl
        joined = new
    assert joined.to_create() == ("CREATE TABLE `tbl00` (\n  `ID` int NOT NULL,\n"
                                  "  `Level` int DEFAULT NULL,\n  PRIMARY KEY (`ID`)\n)")


@pytest.mark.parametrize(("a", "b", "wider"), [
    ("int", "bigint", "bigint"), ("int(11)", "int", "int(11)"),
    ("tinyint(1)", "smallint", "smallint"),
    ("float", "double", "double"), ("text", "mediumtext", "mediumtext"),
    ("blob", "tinyblob", "blob"), ("varchar(10)", "varchar(30)", "varchar(30)"),
    ("char(3)", "char(1)", "char(3)"), ("bit(1)", "bit(8)", "bit(8)"),
    ("datetime", "datetime(3)", "datetime(3)"), ("decimal(5,2)", "decimal(6,1)", "decimal(7,2)"),
    ("enum('a')", "enum('a','b')", "enum('a','b')"), ("set('x','y')", "set('x')", "set('x','y')"),
    ("json", "json", "json"), ("year(4)", "year", "year(4)"),
])
def test_widen_type_takes_the_wider(a: str, b: str, wider: str) -> None:
    assert widen_type(a, b) == wider
    assert canonical_type(widen_type(b, a) or "") == canonical_type(wider)


@pytest.mark.parametrize(("a", "b"), [
    ("varchar(10)", "int"), ("char(5)", "varchar(5)"), ("text", "blob"), ("int", "double"),
    ("decimal(65,0)", "decimal(10,5)"), ("enum('a','b')", "enum('b')"), ("date", "datetime"),
    ("float(7,3)", "float(8,2)"),
])
def test_widen_type_refuses_other_families(a: str, b: str) -> None:
    assert widen_type(a, b) is None


def shard_with(name: str, definition: str) -> TableSchema:
    return apply(table(SHARD.format(name)), f"ALTER TABLE {name} ADD COLUMN {definition}")


@pytest.mark.parametrize(("mine", "theirs", "problem"), [
    ("Age int DEFAULT 0", "Age int DEFAULT -1", "default '0'"),
    ("Age varchar(10)", "Age int", "neither type holds"),
    ("Age int unsigned", "Age int", "unsigned"),
    ("Age int GENERATED ALWAYS AS (ID + 1) VIRTUAL",
     "Age int GENERATED ALWAYS AS (ID + 2) VIRTUAL", "generated"),
    ("Age varchar(5) CHARACTER SET latin1", "Age varchar(5) CHARACTER SET utf8mb4", "charset"),
    ("c int NOT NULL", None, "NOT NULL without a DEFAULT"),
    ("d datetime DEFAULT NOW()", None, "non-constant DEFAULT"),
])
def test_conflicting_definitions_raise(mine: str, theirs: str | None, problem: str) -> None:
    a = shard_with("tbl00", mine)
    b = shard_with("tbl01", theirs) if theirs else table(SHARD.format("tbl01"))
    for action in (lambda: join([a, b]), lambda: compare(a, b)):
        err = raises_code(44007, action)
        assert problem in err.message and "`db`.`tbl00`, `db`.`tbl01`" in err.message


def test_conflicting_keys_raise() -> None:
    a = apply(table(SHARD.format("t1")), "ALTER TABLE t ADD INDEX idx (Name)")
    b = apply(table(SHARD.format("t2")), "ALTER TABLE t ADD INDEX idx (ID, Name)")
    raises_code(44007, lambda: join([a, b]))
    c = apply(table(SHARD.format("t3")), "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (ID, "
                                         "Name)")
    raises_code(44007, lambda: join([a, c]))
    latin = table(SHARD.format("t4") + " DEFAULT CHARSET=latin1")
    utf8 = table(SHARD.format("t5") + " DEFAULT CHARSET=utf8mb4")
    raises_code(44007, lambda: join([latin, utf8]))


def test_join_unions_columns_in_order_and_keys() -> None:
    a = apply(table(SHARD.format("t1")), "ALTER TABLE t ADD COLUMN x int AFTER ID, ADD KEY kx (x)")
    b = apply(table(SHARD.format("t2")), "ALTER TABLE t ADD COLUMN y int NOT NULL DEFAULT 0, "
                                         "MODIFY Name varchar(40) NOT NULL")
    joined = join([a, b])
    assert [c.name for c in joined.columns] == ["ID", "x", "Name", "y"]
    assert joined.column("Name") == Column("Name", "varchar(40)")
    assert joined.other_indexes == {"kx": ("x",)} and joined.primary_key == ("ID",)
    assert compare(a, b) is None and compare(a, joined) == -1 and compare(joined, b) == 1
    assert (joined.schema, joined.table) == ("db", "t1")
    with pytest.raises(ValueError):
        join([])


def test_compare_ignores_order_comments_and_display_widths() -> None:
    a = table("CREATE TABLE a (x int(11) COMMENT 'one', y varchar(3))")
    b = table("CREATE TABLE b (y varchar(3), x int)")
    assert compare(a, b) == 0 and compare(a, a) == 0
