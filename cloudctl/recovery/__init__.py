"""Replication, failover and drill engines."""
