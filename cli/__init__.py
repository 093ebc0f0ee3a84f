"""The `kdm` command: starts services and carries DM's verbs (dmctl's role)."""
