"""Helpers the tests share across suites (a fault-injecting proxy in front of real servers)."""
