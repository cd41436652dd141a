"""The traffic driver over a Route 53-compatible DNS API (AWS Route 53; moto in tests).

``Route53Traffic`` (module ``driver``) keeps one weighted record set per failover name,
one record per target center, and ``switch`` moves a name's traffic to one center in a
single atomic change batch. Only this package and ``drivers.s3`` import boto3 / botocore.
"""

from cloudctl.drivers.dns.driver import Route53Traffic

__all__ = ["Route53Traffic"]
