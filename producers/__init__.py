"""Relay producers: read each source's binlog and publish every event to its relay topic.

DM's relay unit. Imports only the shared `kdm` package, never another role.
"""
