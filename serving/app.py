"""The FastAPI app: the page at /, the JSON API under /v1, /healthz, OpenAPI docs at /docs.

`create_app` takes models already opened (`serving.models.load_models`), so tests build an app
in-process around any .onnx files; `fmnist serve` wraps it in uvicorn (`serving.server`).
Decoding and inference run in the thread pool: a large picture never stalls other requests.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from fmnist import __version__
from fmnist import pictures as pics
from serving import schemas
from serving.decode import decode, to_png
from serving.errors import ApiError, install_handlers
from serving.limits import DEFAULT_TOP_K, MAX_LISTED, MAX_TOP_K, Limits
from serving.models import ServedModel, predict
from serving.testset import FashionTestSet
from serving.uploads import Upload, uploads

STATIC = Path(__file__).parent / "static"
_ERRORS = {
    status: {"model": schemas.ErrorResponse, "description": text}
    for status, text in (
        (400, "empty upload, malformed body, bad base64, no image"),
        (404, "unknown model name"),
        (413, "body over the size limit, too many images, a picture over the pixel cap"),
        (415, "a Content-Type other than multipart/form-data, application/json or image/*"),
        (422, "not a picture, a truncated or corrupt one, an unsupported format, a bad parameter"),
    )
}
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more pictures (any field name; every file part is an image)",
                        }
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "byte"},
                            "description": "base64 pictures (a data: URL too), or {name, data} objects",
                        }
                    },
                },
                "example": {"images": ["iVBORw0KGgo..."]},
            },
            "image/png": {
                "schema": {"type": "string", "format": "binary"},
                "description": "one raw picture (any image/*)",
            },
        },
    }
}


#: HTTP status and error code for each reason `fmnist.pictures` gives for refusing a picture.
PICTURE_ERRORS = {
    "empty": (400, "empty_upload"),
    "too_large": (413, "image_too_large"),
    "not_a_picture": (422, "not_an_image"),
    "unsupported": (422, "unsupported_format"),
    "corrupt": (422, "corrupt_image"),
}


def picture_error(upload: Upload, index: int, count: int, exc: pics.PictureError) -> ApiError:
    """A picture that cannot be used, as an API error with the status its reason calls for."""
    where = f"{upload.name}: " if count == 1 else f"image {index} ({upload.name}): "
    status, code = PICTURE_ERRORS[exc.reason]
    return ApiError(status, code, where + str(exc))


def run_predict(models: list[ServedModel], found: list[Upload], k: int, include_input: bool) -> dict[str, Any]:
    decoded = []
    for i, upload in enumerate(found):
        try:
            decoded.append(decode(upload.data))
        except pics.PictureError as exc:
            raise picture_error(upload, i, len(found), exc) from None
    answers = predict(models, np.stack([d.pixels for d in decoded]), k)
    images = []
    for i, (upload, d, row) in enumerate(zip(found, decoded, answers)):
        item: dict[str, Any] = {
            "index": i,
            "name": upload.name,
            "source_size": list(d.source_size),
            "input": d.conversion,
            "predictions": row,
            "agree": len({a["class"] for a in row}) == 1,
        }
        if include_input:
            item["pixels"] = d.pixels.reshape(-1).tolist()
        images.append(item)
    return {"models": [m.name for m in models], "images": images}


def create_app(
    models: list[ServedModel],
    limits: Limits | None = None,
    test_set: FashionTestSet | None = None,
    note: str | None = None,
) -> FastAPI:
    limits = limits or Limits()
    by_name = {m.name: m for m in models}
    app = FastAPI(
        title="fmnist-parity serve",
        version=__version__,
        description="A Keras and a Lightning model of one CNN on Fashion-MNIST, side by side, in onnxruntime.",
    )
    install_handlers(app)
    app.state.models, app.state.limits, app.state.test_set, app.state.note = models, limits, test_set, note

    def chosen(names: list[str] | None) -> list[ServedModel]:
        if not names:
            return models
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ApiError(404, "unknown_model", f"no model named {unknown[0]!r}; loaded: {', '.join(by_name)}")
        return [by_name[n] for n in dict.fromkeys(names)]

    def needs_test_set() -> FashionTestSet:
        if test_set is None:
            raise ApiError(404, "no_test_data", note or "the server has no test data")
        return test_set

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_model=schemas.Health, tags=["service"])
    def healthz() -> dict[str, Any]:
        """200 while the server runs with its models loaded."""
        return {"status": "ok", "models": len(models)}

    @app.get("/v1/models", response_model=schemas.ModelsResponse, tags=["models"])
    def list_models() -> JSONResponse:
        """Each loaded model: name, engine, run, config, parameter count, test accuracy; the limits."""
        return JSONResponse(
            {
                "models": [m.describe() for m in models],
                "limits": limits.to_dict(),
                "test_images": test_set is not None,
                "note": note,
            }
        )

    @app.post(
        "/v1/predict",
        response_model=schemas.PredictResponse,
        responses=_ERRORS,
        openapi_extra=_BODY_DOC,
        tags=["models"],
    )
    async def predict_images(
        request: Request,
        model: list[str] | None = Query(None, description="models to run (default: all); repeat for several"),
        top_k: int = Query(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="classes per model"),
        include_input: bool = Query(False, description="return the 28x28 image the models saw"),
    ) -> JSONResponse:
        """Classify one or many pictures (multipart files, base64 JSON, or one raw image/* body) with
        every loaded model. Each picture is converted as Fashion-MNIST was made (`fmnist predict`)."""
        selected = chosen(model)
        found = await uploads(request, limits)
        return JSONResponse(await run_in_threadpool(run_predict, selected, found, top_k, include_input))

    @app.get("/v1/test-images/random", response_model=schemas.TestImage, responses=_ERRORS, tags=["test set"])
    def random_test_image() -> dict[str, Any]:
        """A random test image's index and label; its picture is at /v1/test-images/{index}.png."""
        test = needs_test_set()
        return test.item(random.randrange(len(test)))

    @app.get(
        "/v1/test-images/{index}.png",
        response_class=Response,
        tags=["test set"],
        responses={200: {"content": {"image/png": {}}}, 404: _ERRORS[404]},
    )
    def test_image(index: int) -> Response:
        """Test image `index` (0-9999) as a 28x28 grey PNG, as the models see it."""
        test = needs_test_set()
        if not 0 <= index < len(test):
            raise ApiError(404, "not_found", f"test image {index} does not exist (0-{len(test) - 1})")
        return Response(
            to_png(test.images[index]), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
        )

    @app.get("/v1/disagreements", response_model=schemas.DisagreementsResponse, responses=_ERRORS, tags=["test set"])
    async def disagreements(limit: int = Query(100, ge=0, le=MAX_LISTED), offset: int = Query(0, ge=0)) -> JSONResponse:
        """Test images on which the loaded models give different classes (the parity report's
        grid, live). The first call runs every model on all 10,000 test images (about a second)."""
        test = needs_test_set()
        found = await run_in_threadpool(test.disagreements, models)
        rows = found["disagreements"]
        return JSONResponse(
            {
                "models": [m.name for m in models],
                "images": found["images"],
                "same_class": found["same_class"],
                "accuracy": found["accuracy"],
                "total": len(rows),
                "disagreements": rows[offset : offset + limit],
            }
        )

    return app
