"""Row-change rendering, causality and checkpoint decisions (no processes)."""

from __future__ import annotations

import pytest

from consumers.causality import Causality, change_keys
from consumers.change import DELETE, INSERT, UPDATE, RowChange, render
from consumers.checkpoint import Row, Saved, decide

COLS = ("id", "v")


def change(op: str, before: tuple[object, ...] | None, after: tuple[object, ...] | None,
           key: tuple[str, ...] = ("id",)) -> RowChange:
    return RowChange("db", "t", op, COLS, before, after, key)


def test_inserts_merge_into_one_statement_and_safe_mode_replaces() -> None:
    changes = [change(INSERT, None, (1, "a")), change(INSERT, None, (2, None))]
    assert render(changes, safe=False) == [
        ("INSERT INTO `db`.`t` (`id`, `v`) VALUES (1, 'a'), (2, NULL)", None)]
    assert render(changes, safe=True)[0][0].startswith("REPLACE INTO `db`.`t`")
    assert len(render(changes, safe=False, multiple_rows=False)) == 2


def test_update_by_key_and_safe_mode_delete_plus_replace() -> None:
    up = change(UPDATE, (1, "a"), (1, "b"))
    assert render([up], safe=False) == [
        ("UPDATE `db`.`t` SET `id` = %s, `v` = %s WHERE `id` = %s LIMIT 1", [1, "b", 1])]
    assert render([up], safe=True) == [
        ("DELETE FROM `db`.`t` WHERE `id` = %s LIMIT 1", [1]),
        ("REPLACE INTO `db`.`t` (`id`, `v`) VALUES (1, 'b')", None)]


def test_delete_without_key_matches_every_column_and_nulls() -> None:
    gone = change(DELETE, (1, None), None, key=())
    assert render([gone], safe=False) == [
        ("DELETE FROM `db`.`t` WHERE `id` = %s AND `v` IS NULL LIMIT 1", [1])]


def test_deletes_by_key_merge_into_in_list() -> None:
    gone = [change(DELETE, (1, "a"), None), change(DELETE, (2, "b"), None)]
    assert render(gone, safe=False) == [
        ("DELETE FROM `db`.`t` WHERE (`id`) IN ((%s), (%s))", [1, 2])]


def test_causality_keeps_a_key_on_one_worker_and_reports_conflicts() -> None:
    unique = [("PRIMARY", ("id",))]
    causality = Causality(4)
    first = causality.assign(change_keys(change(INSERT, None, (1, "a")), unique))
    assert causality.assign(change_keys(change(UPDATE, (1, "a"), (1, "b")), unique)) == first
    other = causality.assign(change_keys(change(INSERT, None, (7, "x")), unique))
    if other != first:
        moved = change(UPDATE, (1, "b"), (7, "b"))
        assert causality.assign(change_keys(moved, unique)) is None
    causality.reset()
    assert causality.owner == {}


def test_an_image_without_a_full_unique_key_is_keyed_by_all_its_values() -> None:
    unique = [("u", ("id",))]
    assert change_keys(change(INSERT, None, (None, "a")), unique) == ["db.t|*|None\x1fa"]
    causality = Causality(8)
    first = causality.assign(change_keys(change(INSERT, None, (None, "a")), unique))
    then = causality.assign(change_keys(change(UPDATE, (None, "a"), (5, "a")), unique))
    assert then == first


def rows(*spec: tuple[int, int, int, int]) -> Saved:
    return Saved(tuple(Row(w, r, s, e, "f:1", None) for w, r, s, e in spec))


@pytest.mark.parametrize(("saved", "committed", "metadata", "expected"), [
    (rows(), None, "", (100, 100, "meta")),
    (rows((0, 5, 40, 50), (1, 5, 40, 50)), 50, "kdm:5", (50, 50, "checkpoint")),
    (rows((0, 5, 40, 50), (1, 5, 40, 50)), 40, "kdm:4", (50, 50, "checkpoint")),
    (rows((0, 5, 40, 50), (1, 4, 30, 40)), 40, "kdm:4", (40, 50, "unfinished round")),
    (rows((0, 5, 40, 50), (1, 5, 40, 50)), 0, "", (0, 50, "offset reset")),
    (rows((0, 5, 40, 50)), 70, "replay", (70, 70, "offset reset")),
])
def test_start_decisions(saved: Saved, committed: int | None, metadata: str,
                         expected: tuple[int, int, str]) -> None:
    start = decide(saved, committed, metadata, fallback=100)
    assert (start.offset, start.safe_until) == expected[:2]
    assert start.reason.startswith(expected[2])
    assert start.round == saved.last_round + 1


def test_the_state_row_does_not_make_a_round_look_unfinished() -> None:
    saved = Saved((Row(0, 7, 60, 70, "f:1", None), Row(1, 7, 60, 70, "f:1", None),
                   Row(-1, 3, 20, 21, "f:1", "{}")))
    start = decide(saved, 70, "kdm:7", fallback=0)
    assert (start.offset, start.safe_until, start.round) == (70, 70, 8)


def test_temporal_values_compare_as_times() -> None:
    from consumers.row_expr import Temporal, compare

    midnight = Temporal("2021-06-01 00:00:00")
    assert compare(midnight, "2021-06-01") == 0
    assert compare(midnight, "2021-6-1 00:00:01") == -1
    assert compare(Temporal("2021-01-01 04:34:56.567800"), "2021-01-01 12:34:56.5678+08:00") == 0
    assert compare(Temporal("0000-00-00"), "1970-01-01") == -1
    assert compare(midnight, "not a date") == (-1 if "2" < "n" else 1)


def test_compaction_follows_dm_rules() -> None:
    from consumers.compactor import compact

    changes = [change(INSERT, None, (1, "a")), change(UPDATE, (1, "a"), (1, "b")),
               change(INSERT, None, (2, "x")), change(DELETE, (2, "x"), None),
               change(UPDATE, (3, "p"), (3, "q")), change(UPDATE, (3, "q"), (3, "r")),
               change(DELETE, (4, "d"), None), change(INSERT, None, (4, "e"))]
    out, needs_replace = compact(changes)
    assert [(c.op, c.before, c.after) for c in out] == [
        (INSERT, None, (1, "b")), (DELETE, (2, "x"), None), (UPDATE, (3, "p"), (3, "r")),
        (INSERT, None, (4, "e"))]
    assert needs_replace


def test_compaction_splits_key_changing_updates() -> None:
    from consumers.compactor import compact

    out, _ = compact([change(UPDATE, (1, "a"), (2, "a"))])
    assert [(c.op, c.before, c.after) for c in out] == [(DELETE, (1, "a"), None),
                                                       (INSERT, None, (2, "a"))]


def test_safe_mode_survives_a_restart_during_a_replay() -> None:
    # applied up to 1100, replayed from 500, one round [500, 600) committed, then a restart
    saved = Saved((Row(0, 9, 500, 600, "f:1", None, 1100), Row(1, 9, 500, 600, "f:1", None,
                                                                 1100)))
    start = decide(saved, 600, "kdm:9", fallback=0)
    assert (start.offset, start.safe_until) == (600, 1100)
    partial = Saved((Row(0, 9, 500, 600, "f:1", None, 1100), Row(1, 8, 400, 500, "f:1", None,
                                                                   0)))
    start = decide(partial, 500, "kdm:8", fallback=0)
    assert (start.offset, start.safe_until) == (500, 1100)


def test_pipeline_follows_each_layout_and_causality_each_table() -> None:
    from consumers.downstream import KeyCache, TableKeys
    from consumers.feed import Layout
    from consumers.pipeline import Pipeline, Rules
    from kdm.config.task import parse_task

    task = parse_task(
        "name: tk\ntask-mode: incremental\n"
        "target-database: {host: 127.0.0.1, port: 4000, user: root}\n"
        "routes:\n  r: {schema-pattern: up, table-pattern: t, target-schema: down}\n"
        "block-allow-list:\n  b: {ignore-tables: [{db-name: up, tbl-name: skip}]}\n"
        "mysql-instances:\n  - source-id: s1\n    route-rules: [r]\n"
        "    block-allow-list: b\n")

    class Keys(KeyCache):
        def keys(self, schema: str, table: str) -> TableKeys:
            return TableKeys((("PRIMARY", ("id",)),), ("id",))

    pipeline = Pipeline(Rules.build(task, "s1"), Keys(task.target_database))
    column = {"type": "int", "unsigned": False, "nullable": False, "key": "", "charset": ""}
    narrow = Layout("up", "t", INSERT, [{**column, "name": "id"}])
    wide = Layout("up", "t", INSERT, [{**column, "name": "x"}, {**column, "name": "id"}])
    other = Layout("up", "u", INSERT, [{**column, "name": "id"}])
    skipped = Layout("up", "skip", INSERT, [{**column, "name": "id"}])
    unique = [("PRIMARY", ("id",))]  # one object throughout, as the hot path passes it
    seen = []
    for layout, after in ((narrow, [1]), (wide, [7, 2]), (narrow, [3]), (skipped, [4]),
                          (other, [1]), (wide, [8, 5])):
        made = pipeline.change(layout, None, after, 0)
        seen.append(None if made is None else
                    (made.schema, made.table, made.columns, made.after,
                     change_keys(made, unique)))
    assert seen == [("down", "t", ("id",), (1,), ["down.t|PRIMARY|1"]),
                    ("down", "t", ("x", "id"), (7, 2), ["down.t|PRIMARY|2"]),
                    ("down", "t", ("id",), (3,), ["down.t|PRIMARY|3"]),
                    None,
                    ("up", "u", ("id",), (1,), ["up.u|PRIMARY|1"]),
                    ("down", "t", ("x", "id"), (8, 5), ["down.t|PRIMARY|5"])]
