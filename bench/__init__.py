"""Benchmarks of cloudctl, each reported as a ratio to a baseline measured side by side in the same run.

Run them all with ``python -m bench`` (a table, and ``bench/results.json``), or one with
``python -m bench NAME --size N``; ``--smoke`` runs the smallest size in seconds. See
``bench/README.md`` for what each benchmark measures, its baseline, and the latest figures.
"""
