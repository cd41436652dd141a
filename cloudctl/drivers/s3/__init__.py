"""The object-storage driver over an S3-compatible API (Ceph RGW, MinIO, AWS; moto in tests).

A small facade; the modules hold the detail and their invariants:

- ``driver``: ``S3ObjectStorage``, the ``base.ObjectStorage`` Protocol for one center,
  sha256-checked on write and read, versioned buckets per department;
- ``calls``: botocore clients, retries through tenacity on the injected clock, and the
  mapping of botocore errors to ``cloudctl.errors`` (shared with ``drivers.dns``).

Only this package and ``drivers.dns`` import boto3 / botocore.
"""

from cloudctl.drivers.s3.calls import RetryPolicy
from cloudctl.drivers.s3.driver import S3ObjectStorage, department_bucket_name

__all__ = ["RetryPolicy", "S3ObjectStorage", "department_bucket_name"]
