"""What one request may ask of the server: bytes, images, pixels. Named here so the API, its
docs and the tests agree on one set of numbers."""

from __future__ import annotations

from dataclasses import dataclass

from fmnist.pictures import MAX_PIXELS

MB = 1_000_000
#: Bytes of one request body (all images together, multipart or base64 JSON): 413 above.
DEFAULT_MAX_UPLOAD_BYTES = 5 * MB
#: Images in one POST /v1/predict: 413 above. A page sends one; a script may batch.
DEFAULT_MAX_IMAGES = 64
#: A body announced larger than this is refused without reading it (the connection is closed);
#: a smaller one over the limit is read and discarded first, so the client sees the 413.
DRAIN_AT_MOST_BYTES = 64 * MB
#: Pictures decoded at once per process: a 40-megapixel picture takes 160 MB while decoding.
DECODE_SLOTS = 2
#: Non-file fields accepted in a multipart body (they are ignored; a flood is refused).
MAX_FORM_FIELDS = 16
MAX_TOP_K = 10
DEFAULT_TOP_K = 3
#: Test images listed by GET /v1/disagreements at most per call.
MAX_LISTED = 1000
__all__ = ["Limits", "MAX_PIXELS"]  # MAX_PIXELS: the project's own cap (fmnist.pictures), reused


@dataclass(frozen=True)
class Limits:
    """The per-request limits of one server (`fmnist serve --max-upload-mb/--max-images`)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_images: int = DEFAULT_MAX_IMAGES
    max_pixels: int = MAX_PIXELS

    def to_dict(self) -> dict[str, int]:
        return {"max_upload_bytes": self.max_upload_bytes, "max_images": self.max_images, "max_pixels": self.max_pixels}
