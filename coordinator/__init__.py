"""The coordinator: source and task registry, shard-DDL locks, scheduling, status, HTTP API.

DM-master's role. Imports only the shared `kdm` package, never another role.
"""
