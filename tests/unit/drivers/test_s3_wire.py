"""``drivers.s3.wire``: what it reads from S3 answers, and refusals shaped as botocore's.

The requests themselves are specified against a real server in
``tests/integration/test_s3_object_storage.py``.
"""

from __future__ import annotations

import datetime

from cloudctl.drivers.s3 import calls, wire

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def listing(contents: str, *, truncated: bool = False, token: str = "", encoded: bool = True) -> bytes:
    parts = [f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NAMESPACE}">']
    parts.append("<Name>records</Name><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>")
    if encoded:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if token:
        parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    parts.append(contents)
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def entry(key: str, *, size: int = 5, etag: str = "5d41402abc4b2a76b9719d911017c592") -> str:
    return (
        f"<Contents><Key>{key}</Key><LastModified>2026-12-04T19:21:03.000Z</LastModified>"
        f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
    )


def test_a_listing_page_gives_each_object_with_its_key_decoded() -> None:
    page = wire.parse_listing(listing(entry("dept/a%20b%2Bc%25") + entry("dept/%E6%95%B0", size=7)))

    assert [(listed.key, listed.size_bytes) for listed in page.objects] == [
        ("dept/a b+c%", 5),
        ("dept/数", 7),
    ]
    assert page.objects[0].etag == "5d41402abc4b2a76b9719d911017c592"
    assert page.objects[0].last_modified == datetime.datetime(2026, 12, 4, 19, 21, 3, tzinfo=datetime.UTC)
    assert page.next_token is None


def test_keys_are_taken_as_they_are_when_the_server_did_not_encode_them() -> None:
    page = wire.parse_listing(listing(entry("dept/a+b%20"), encoded=False))

    assert [listed.key for listed in page.objects] == ["dept/a+b%20"]


def test_a_truncated_listing_names_the_next_page() -> None:
    page = wire.parse_listing(
        listing(entry("a"), truncated=True, token="1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
    )

    assert page.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="


def test_a_refusal_is_the_client_error_botocore_raises_with_code_status_and_headers() -> None:
    body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"

    error = wire.client_error("GetObject", status=503, headers={"Retry-After": "7"}, body=body)

    assert (calls.error_code(error), calls.http_status(error)) == ("SlowDown", 503)
    assert error.response["Error"]["Message"] == "Reduce your rate"
    assert calls.is_retryable(error)
    assert calls.retry_after_s(error, now=0.0) == 7.0


def test_a_refusal_without_a_body_is_named_by_its_status() -> None:
    error = wire.client_error("GetObject", status=404, headers={}, body=b"")

    assert (calls.error_code(error), calls.http_status(error)) == ("404", 404)
    assert not calls.is_retryable(error)
