"""Reading POST /v1/predict's body: at most `max_upload_bytes`, then the images in it, from
multipart form data, base64 JSON, or one raw picture (`Content-Type: image/...`). Every way it
can go wrong is an `ApiError` with its status; no picture is decoded here."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from serving.errors import ApiError
from serving.limits import DRAIN_AT_MOST_BYTES, MAX_FORM_FIELDS, Limits

JSON_TYPES = ("application/json",)
MULTIPART = "multipart/form-data"
RAW_TYPES = ("image/", "application/octet-stream")
ACCEPTED = 'multipart/form-data (file fields), application/json ({"images": [base64, ...]}) or image/*'


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def _too_large(limits: Limits, size: int | None = None) -> ApiError:
    said = f" ({size:,} bytes)" if size is not None else ""
    return ApiError(413, "upload_too_large", f"request body over the {limits.max_upload_bytes:,}-byte limit{said}")


async def read_body(request: Request, limits: Limits) -> bytes:
    """The body, refused with 413 once it passes the limit (from Content-Length when given, else
    while streaming). A body over the limit is drained (up to a bound) so the client reads the 413
    instead of a reset connection."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", f"Content-Length is not a number: {declared!r}") from None
        if size > limits.max_upload_bytes:
            if size <= DRAIN_AT_MOST_BYTES:
                async for _ in request.stream():
                    pass
            raise _too_large(limits, size)
    stream = request.stream()
    chunks, total = [], 0
    async for chunk in stream:
        total += len(chunk)
        if total > limits.max_upload_bytes:
            break
        chunks.append(chunk)
    else:
        return b"".join(chunks)
    async for rest in stream:  # the same stream, on from where it stopped
        total += len(rest)
        if total > DRAIN_AT_MOST_BYTES:
            break
    raise _too_large(limits)


def _replay(request: Request, body: bytes) -> Request:
    """The same request with its body already read, for Starlette's form parser."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def uploads(request: Request, limits: Limits) -> list[Upload]:
    """The pictures in the request, in order, checked for count; bytes not yet decoded."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind == MULTIPART or kind in JSON_TYPES or kind.startswith(RAW_TYPES)):
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type {kind or '(none)'!r} is not accepted; send {ACCEPTED}"
        )
    body = await read_body(request, limits)
    if kind == MULTIPART:
        found = await _multipart(request, body, limits)
    elif kind in JSON_TYPES:
        found = _json(body, limits)
    else:
        found = [Upload("body", body)]
    if not found:
        raise ApiError(400, "no_image", f"no image in the request; send {ACCEPTED}")
    if len(found) > limits.max_images:
        raise _too_many(limits, len(found))
    return found


def _too_many(limits: Limits, count: int | None = None) -> ApiError:
    said = f" ({count})" if count is not None else ""
    return ApiError(413, "too_many_images", f"too many images in one request{said}; at most {limits.max_images}")


async def _multipart(request: Request, body: bytes, limits: Limits) -> list[Upload]:
    try:
        form = await _replay(request, body).form(max_files=limits.max_images, max_fields=MAX_FORM_FIELDS)
    except (MultiPartException, HTTPException) as exc:  # Starlette turns the first into the second
        text = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc)
        if text.startswith("Too many files"):
            raise _too_many(limits) from None
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {text}") from None
    found = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                found.append(Upload(value.filename or key, await value.read()))
    finally:
        await form.close()
    return found


def _json(body: bytes, limits: Limits) -> list[Upload]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not ("images" in doc or "image" in doc):
        raise ApiError(400, "bad_json", 'expected {"images": ["<base64>", ...]} or {"image": "<base64>"}')
    items = doc["images"] if "images" in doc else [doc["image"]]
    if not isinstance(items, list):
        raise ApiError(400, "bad_json", '"images" must be a list of base64 strings')
    if len(items) > limits.max_images:
        raise _too_many(limits, len(items))
    return [_base64_item(item, i) for i, item in enumerate(items)]


def _base64_item(item: object, index: int) -> Upload:
    """A base64 string (a `data:image/...;base64,` URL too) or {"name": ..., "data": base64}."""
    name = f"image {index}"
    if isinstance(item, dict):
        name = str(item.get("name") or name)
        item = item.get("data")
    if not isinstance(item, str):
        raise ApiError(400, "bad_base64", f"{name}: expected a base64 string")
    if item.startswith("data:"):
        item = item.partition(",")[2]
    try:
        return Upload(name, base64.b64decode(item, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "bad_base64", f"{name}: not valid base64 ({exc})") from None
