"""The data path of the S3 driver without botocore's per-request machinery: ``ObjectWire``.

A GET or PUT of one object through a botocore client costs a few milliseconds of CPU
(parameter validation, serialisation, the event hooks, response parsing), more than
moving a MiB on a LAN; a listing page of 1,000 keys costs about 0.25 ms per key in
botocore's parser. ``ObjectWire`` does these three requests itself, with botocore's
own parts where it matters:

- every request is built as a botocore ``AWSRequest`` and signed by botocore's
  ``S3SigV4Auth`` with the driver's credentials, region and client configuration (the
  payload is not signed: ``UNSIGNED-PAYLOAD``, as the client does);
- it is sent on a botocore ``URLLib3Session`` (a pool of urllib3 connections made like the
  client's: its timeouts, certificate bundle and the environment's proxies), the body in
  one block; the answer's body is read in one block through botocore's ``StreamingBody``
  (its length checked, as the client checks it). A server that answers
  ``Connection: close`` (moto) gets a new connection per request, any other keeps them open;
- failures surface as what the client raises: botocore's connection errors, and a
  ``ClientError`` carrying the S3 error code, the HTTP status and the headers, so the
  driver's ``Caller`` retries and maps them exactly as it does the client's;
- a ``ListObjectsV2`` page is parsed with ``xml.etree`` (keys URL-encoded on the wire and
  decoded here, as botocore does).

Addressing is path-style, as the driver's client. Only the S3 driver uses this module.
"""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

import botocore.auth  # type: ignore[import-untyped]  # no stubs installed: Any at this boundary
import botocore.awsrequest  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.httpsession  # type: ignore[import-untyped]
import botocore.response  # type: ignore[import-untyped]
import botocore.utils  # type: ignore[import-untyped]

HTTP_OK = 200
HTTP_REDIRECT = 300
LISTING_PAGE_KEYS = 1000


@dataclasses.dataclass(frozen=True)
class Answer:
    """A successful answer: the status, the headers (case-insensitive) and the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class ListedObject:
    key: str
    size_bytes: int
    etag: str
    last_modified: datetime.datetime


@dataclasses.dataclass(frozen=True)
class ListingPage:
    objects: list[ListedObject]
    next_token: str | None
    """The continuation token of the next page; ``None`` on the last page."""


class ObjectWire:
    """GET and PUT of objects and ListObjectsV2 pages at one S3 endpoint, signed by botocore."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        region: str,
        client_config: Any,
        verify: bool | str,
        max_pool_connections: int,
    ) -> None:
        split = urllib.parse.urlsplit(endpoint_url)
        self._origin = f"{split.scheme}://{split.netloc}"
        self._base_path = split.path.rstrip("/")
        self._signer = botocore.auth.S3SigV4Auth(
            botocore.credentials.Credentials(access_key, secret_key), "s3", region
        )
        self._client_config = client_config
        self._session = botocore.httpsession.URLLib3Session(
            verify=verify,
            proxies=botocore.utils.get_environ_proxies(endpoint_url),
            timeout=(client_config.connect_timeout, client_config.read_timeout),
            max_pool_connections=max_pool_connections,
            proxies_config=client_config.proxies_config,
        )

    def get_object(self, bucket: str, key: str) -> Answer:
        return self._send("GetObject", "GET", self._object_path(bucket, key))

    def put_object(self, bucket: str, key: str, *, body: bytes, headers: Mapping[str, str]) -> Answer:
        return self._send("PutObject", "PUT", self._object_path(bucket, key), body=body, headers=headers)

    def list_objects_page(
        self,
        bucket: str,
        *,
        prefix: str,
        continuation_token: str | None,
        max_keys: int = LISTING_PAGE_KEYS,
    ) -> ListingPage:
        params = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys)}
        if prefix:
            params["prefix"] = prefix
        if continuation_token:
            params["continuation-token"] = continuation_token
        answer = self._send("ListObjectsV2", "GET", self._bucket_path(bucket), params=params)
        return parse_listing(answer.body)

    def _bucket_path(self, bucket: str) -> str:
        return f"{self._base_path}/{urllib.parse.quote(bucket, safe='')}"

    def _object_path(self, bucket: str, key: str) -> str:
        return f"{self._bucket_path(bucket)}/{urllib.parse.quote(key, safe='/~')}"

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        request = botocore.awsrequest.AWSRequest(
            method=method, url=self._origin + path, headers=dict(headers or {}), data=body, params=params
        )
        request.context["client_config"] = self._client_config  # payload signing as the client's
        self._signer.add_auth(request)
        prepared = request.prepare()
        prepared.stream_output = True  # the body is read below in one block, not 64 KiB at a time
        response = self._session.send(prepared)
        # Read as the client reads a streamed body: the length checked, urllib3's errors as botocore's.
        length = response.headers.get("Content-Length")
        content = botocore.response.StreamingBody(response.raw, int(length) if length else None).read()
        if HTTP_OK <= response.status_code < HTTP_REDIRECT:
            return Answer(status=response.status_code, headers=response.headers, body=content)
        raise client_error(operation, status=response.status_code, headers=response.headers, body=content)


def client_error(operation: str, *, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """The ``ClientError`` botocore raises for this refusal: the S3 error code and message from
    the body (the status when the body has none, as for a HEAD), the status and headers."""
    code, message = str(status), ""
    if body:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            message = body[:200].decode("utf-8", errors="replace")
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "HTTPHeaders": {name.lower(): value for name, value in headers.items()},
        },
    }
    return botocore.exceptions.ClientError(response, operation)


def parse_listing(body: bytes) -> ListingPage:
    """One ListObjectsV2 answer (``encoding-type=url``): its objects and the next page's token."""
    objects: list[ListedObject] = []
    next_token: str | None = None
    truncated = url_encoded = False
    root = ElementTree.fromstring(body)
    for element in root:
        name = _local(element.tag)
        if name == "Contents":
            fields = {_local(child.tag): child.text or "" for child in element}
            objects.append(
                ListedObject(
                    key=fields["Key"],
                    size_bytes=int(fields["Size"]),
                    etag=fields.get("ETag", "").strip('"'),
                    last_modified=_timestamp(fields["LastModified"]),
                )
            )
        elif name == "IsTruncated":
            truncated = (element.text or "").strip().lower() == "true"
        elif name == "NextContinuationToken":
            next_token = element.text or None
        elif name == "EncodingType":
            url_encoded = (element.text or "").strip() == "url"
    if url_encoded:  # a server that ignores encoding-type sends the keys as they are
        objects = [
            dataclasses.replace(listed, key=urllib.parse.unquote_plus(listed.key)) for listed in objects
        ]
    return ListingPage(objects=objects, next_token=next_token if truncated else None)


def _local(tag: str) -> str:
    """An element's name without its XML namespace."""
    return tag.rpartition("}")[2]


def _timestamp(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)
