"""Shard-DDL coordination (DM-master's shardddl): lock logic as pure, in-memory values.

- `pessimism`: one lock per target table; every source must report the same DDLs, then the
  owner executes them and the others skip (reference dm-manual-A §7.1, seed 003).
- `optimism`: per-shard table structures joined into one; a shard's DDL reaches the
  downstream only when it moves the joined structure (dm-manual-A §7.2).
- `show`: `show-ddl-locks` output and query-status' `unresolvedGroups` / `blockingDDLs`.

Nothing here does I/O: the coordinator service feeds infos and done notices in, sends the
operations that come out, and persists each lock's `to_dict()` on the compacted locks topic.
"""
