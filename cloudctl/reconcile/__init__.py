"""Level-based reconcilers: take a reference, observe the backends, act, write status."""
