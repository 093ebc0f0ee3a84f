"""Shard-DDL coordination (DM-master's shardddl): lock logic as pure, in-memory values.

- `pessimism`: one lock per target table; every source must report the same DDLs, then the
  owner executes them and the others skip (reference dm-manual-A §7.1, seed 003).
- `optimism`: per-shard table structures joined into one; a shard's DDL reaches the
  downstream only when it moves the joined structure (dm-manual-A §7.2).
- `show`: `show-ddl-locks` output and query-status' `unresolvedGroups` / `blockingDDLs`.
- `core`: both keepers fed one ddl-topic message (or one unlock half) at a time; what
  changed comes out as a `Step` (locks to persist, operations to send).

Those do no I/O. The leading coordinator's loop does (`service`, over `link`): it feeds the
messages in, and commits each step (the locks' `to_dict()` on the compacted locks topic,
the operations, the consumed offset) in one Kafka transaction.
"""
