"""Sync consumers: run subtasks (task x source), apply DML/DDL to TiDB, commit offsets as
checkpoints; the dump and load units of full migration live here too.

DM's sync, dump and load units. Imports only the shared `kdm` package, never another role.
"""
