"""`fmnist serve`'s JSON API and page through FastAPI's TestClient (in-process, no socket): the
answers equal `fmnist predict`'s on the same picture and model, every bad input gets its status
and one-line JSON error and leaves the server answering, the test-set features (random image,
live disagreements) and what happens without the data, the models listing, the docs, the
limits. How the server is set up (model names, exports made again, the command line, no
framework in the serving code) is in test_serve_setup.py; the real-server load test and the
browser test in test_serve_live.py (slow)."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
from fastapi.testclient import TestClient  # noqa: E402

from fmnist import CLASS_NAMES  # noqa: E402
from fmnist.pictures import MAX_PIXELS  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.limits import DEFAULT_MAX_IMAGES, DEFAULT_MAX_UPLOAD_BYTES, Limits  # noqa: E402
from serving.models import load_models  # noqa: E402
from serving.testset import FashionTestSet, load_test_set  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("tensorflow", "keras", "torch", "lightning", "pytorch_lightning", "jax", "torchmetrics")


def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode).save(out, format="PNG")
    return out.getvalue()


def photo_bytes(fmt: str = "JPEG") -> bytes:
    """A dark garment-like blob on white, 160x120: a photo that gets converted."""
    canvas = np.full((120, 160, 3), 255, np.uint8)
    canvas[20:100, 50:110] = (40, 60, 90)
    out = io.BytesIO()
    Image.fromarray(canvas, "RGB").save(out, format=fmt)
    return out.getvalue()


def png_cut_after_header(width: int, height: int) -> bytes:
    """A PNG claiming width x height whose pixel data stops after a few bytes: only its header is whole."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    start = zlib.compress(b"\0" * 1000)[:12]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", start)
    )


@pytest.fixture(scope="module")
def models(contract_models):
    return load_models([str(contract_models["keras"]), str(contract_models["lightning"])])


@pytest.fixture(scope="module")
def client(models) -> TestClient:
    """Small limits (3 images, 200 kB) so the limit cases are cheap; no test set."""
    return TestClient(
        create_app(models, Limits(max_upload_bytes=200_000, max_images=3), None, "No Fashion-MNIST test data here"),
        raise_server_exceptions=False,
    )


@pytest.fixture(scope="module")
def sample() -> bytes:
    return photo_bytes()


def expected_answer(contract_models, picture: bytes, tmp_path: Path, k: int = 3) -> list[list[tuple[str, float]]]:
    """`fmnist predict` (its own code path, on a file) for the same picture with each model."""
    from fmnist.predicting import predict_files

    path = tmp_path / "picture.jpg"
    path.write_bytes(picture)
    out = []
    for engine in ("keras", "lightning"):
        result = predict_files(contract_models[engine], [path], top_k=k)
        assert not result.failures
        out.append([(c, p) for c, p in result.predictions[0].top_k])
    return out


def answered(body: dict) -> list[list[tuple[str, float]]]:
    return [[(r["class"], r["probability"]) for r in a["top_k"]] for a in body["images"][0]["predictions"]]


def assert_same(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> None:
    for g, w in zip(got, want, strict=True):
        assert [c for c, _ in g] == [c for c, _ in w]
        assert np.allclose([p for _, p in g], [p for _, p in w], atol=1e-6)


def test_predict_equals_fmnist_predict_in_every_request_format(client, contract_models, sample, tmp_path):
    want = expected_answer(contract_models, sample, tmp_path)
    b64 = base64.b64encode(sample).decode()
    requests = {
        "multipart": dict(files={"image": ("shoe.jpg", sample, "image/jpeg")}),
        "json": dict(json={"images": [b64]}),
        "json one, data URL": dict(json={"image": "data:image/jpeg;base64," + b64}),
        "json named": dict(json={"images": [{"name": "shoe.jpg", "data": b64}]}),
        "raw body": dict(content=sample, headers={"Content-Type": "image/jpeg"}),
    }
    for how, kwargs in requests.items():
        response = client.post("/v1/predict", **kwargs)
        assert response.status_code == 200, (how, response.text)
        body = response.json()
        assert body["models"] == ["keras", "lightning"]
        image = body["images"][0]
        assert image["input"] == "converted" and image["source_size"] == [160, 120], how
        assert_same(answered(body), want)
        assert image["agree"] == (want[0][0][0] == want[1][0][0])
        assert "pixels" not in image


def test_predict_returns_the_28x28_input_many_images_in_order_and_chosen_models(client, contract_models, sample):
    from fmnist.onnx_model import OnnxModel
    from fmnist.pictures import to_network_input

    test_like = np.zeros((28, 28), np.uint8)
    test_like[6:22, 9:19] = 200  # a dark-background 28x28 picture: passed through unchanged
    files = [("image", ("a.jpg", sample, "image/jpeg")), ("image", ("b.png", png_bytes(test_like), "image/png"))]
    body = client.post("/v1/predict", params={"include_input": "true", "top_k": 10}, files=files).json()
    first, second = body["images"]
    assert [first["name"], second["name"]] == ["a.jpg", "b.png"] and second["input"] == "pass-through"
    assert second["pixels"] == test_like.reshape(-1).tolist()
    grey = Image.open(io.BytesIO(sample)).convert("L")
    assert first["pixels"] == to_network_input(grey)[0].reshape(-1).tolist()
    logits = OnnxModel(contract_models["lightning"]).logits(
        np.stack([np.array(first["pixels"]).reshape(28, 28), test_like])
    )
    for image, row in zip(body["images"], logits):
        ranked = image["predictions"][1]["top_k"]
        assert len(ranked) == 10 and [r["index"] for r in ranked] == list(np.argsort(-row, kind="stable"))
        assert sorted(r["class"] for r in ranked) == sorted(CLASS_NAMES)
    only = client.post("/v1/predict", params={"model": "lightning"}, files=files[:1]).json()
    assert only["models"] == ["lightning"] and len(only["images"][0]["predictions"]) == 1


NOISE_PNG = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64)))  # incompressible: ~4 kB of pixel data
# (name, request kwargs, status, code, words in the message)
TOO_MANY = [("image", (f"{i}.jpg", photo_bytes(), "image/jpeg")) for i in range(4)]
BAD_INPUT = [
    (
        "not an image",
        dict(files={"image": ("notes.png", b"these are words, not pixels", "image/png")}),
        422,
        "not_an_image",
        "not a picture",
    ),
    ("empty upload", dict(files={"image": ("empty.png", b"", "image/png")}), 400, "empty_upload", "empty upload"),
    ("empty raw body", dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty_upload", "empty"),
    (
        "truncated PNG",
        dict(files={"image": ("cut.png", NOISE_PNG[: len(NOISE_PNG) // 2], "image/png")}),
        422,
        "corrupt_image",
        "truncated",
    ),
    # Only a header: were the pixel cap checked after decoding, this would read "truncated".
    (
        "over the pixel cap",
        dict(files={"image": ("big.png", png_cut_after_header(8000, 6000), "image/png")}),
        413,
        "image_too_large",
        f"{MAX_PIXELS:,}-pixel limit",
    ),
    (
        "far over the pixel cap",
        dict(files={"image": ("huge.png", png_cut_after_header(30000, 30000), "image/png")}),
        413,
        "image_too_large",
        "too large",
    ),
    (
        "unsupported format",
        dict(files={"image": ("x.ico", photo_bytes("ICO"), "image/x-icon")}),
        422,
        "unsupported_format",
        "not supported",
    ),
    (
        "body over the limit",
        dict(content=b"\0" * 200_001, headers={"Content-Type": "image/png"}),
        413,
        "upload_too_large",
        "200,000-byte limit",
    ),
    (
        "body over the limit, no Content-Length",
        dict(content=iter([b"\0" * 100_000] * 3), headers={"Content-Type": "image/png"}),
        413,
        "upload_too_large",
        "limit",
    ),
    ("too many images (multipart)", dict(files=TOO_MANY), 413, "too_many_images", "at most 3"),
    (
        "too many images (json)",
        dict(json={"images": [base64.b64encode(b"x").decode()] * 4}),
        413,
        "too_many_images",
        "at most 3",
    ),
    (
        "wrong content type",
        dict(content=b"hello", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
        "text/plain",
    ),
    ("no content type", dict(content=b"hello", headers={"Content-Type": ""}), 415, "unsupported_media_type", "(none)"),
    (
        "unknown model",
        dict(params={"model": "tensorflow"}, files={"image": ("a.jpg", photo_bytes(), "image/jpeg")}),
        404,
        "unknown_model",
        "loaded: keras, lightning",
    ),
    (
        "malformed JSON",
        dict(content=b'{"images": [', headers={"Content-Type": "application/json"}),
        400,
        "bad_json",
        "not valid JSON",
    ),
    ("JSON without images", dict(json={"pictures": []}), 400, "bad_json", '"images"'),
    ("bad base64", dict(json={"images": ["@@not base64@@"]}), 400, "bad_base64", "not valid base64"),
    ("no image in the form", dict(files={"note": (None, "hi")}), 400, "no_image", "no image"),
    (
        "malformed multipart",
        dict(content=b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data"}),
        400,
        "bad_multipart",
        "multipart",
    ),
    (
        "bad top_k",
        dict(params={"top_k": 11}, files={"image": ("a.jpg", photo_bytes(), "image/jpeg")}),
        422,
        "invalid_parameter",
        "top_k",
    ),
    (
        "one bad image among good ones",
        dict(files=[("image", ("ok.jpg", photo_bytes(), "image/jpeg")), ("image", ("bad.png", b"nope", "image/png"))]),
        422,
        "not_an_image",
        "image 1 (bad.png)",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_json_error_and_the_server_keeps_answering(case, client, contract_models, sample, tmp_path):
    _, kwargs, status, code, words = case
    response = client.post("/v1/predict", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and words in body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    good = client.post("/v1/predict", files={"image": ("shoe.jpg", sample, "image/jpeg")})
    assert good.status_code == 200
    assert_same(answered(good.json()), expected_answer(contract_models, sample, tmp_path))


def test_default_upload_limit_is_5_mb_and_the_limits_are_listed(models):
    client = TestClient(create_app(models))
    assert DEFAULT_MAX_UPLOAD_BYTES == 5_000_000
    over = client.post(
        "/v1/predict", content=b"\0" * (DEFAULT_MAX_UPLOAD_BYTES + 1), headers={"Content-Type": "image/png"}
    )
    assert over.status_code == 413 and over.json()["code"] == "upload_too_large"
    limits = client.get("/v1/models").json()["limits"]
    assert limits == {"max_upload_bytes": 5_000_000, "max_images": DEFAULT_MAX_IMAGES, "max_pixels": MAX_PIXELS}


def test_other_errors_are_json_too(client):
    for response, status in (
        (client.get("/v1/nothing"), 404),
        (client.get("/v1/predict"), 405),
        (client.get("/v1/test-images/random"), 404),
    ):
        assert response.status_code == status and set(response.json()) == {"error", "code"}


def test_models_health_docs_and_page(client, contract_models):
    from fmnist.architecture import count_params
    from fmnist.config import load_config

    listed = client.get("/v1/models").json()
    assert [m["name"] for m in listed["models"]] == ["keras", "lightning"]
    for m, engine in zip(listed["models"], ("keras", "lightning")):
        assert m["engine"] == engine and m["run"] == f"contract-{engine}" and m["test_accuracy"] == 0.5
        assert m["parameters"] == count_params(load_config(REPO / "configs" / "baseline.yaml"))
        assert m["config"]["model"] and m["class_names"] == list(CLASS_NAMES)
    assert listed["test_images"] is False and listed["note"]
    assert client.get("/healthz").json() == {"status": "ok", "models": 2}
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert {"/v1/models", "/healthz", "/v1/disagreements"} <= set(spec["paths"])
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for element in ('id="upload"', 'id="draw"', 'id="random-test"', 'id="preview"', 'id="cards"', 'id="disagree-grid"'):
        assert element in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.fixture(scope="module")
def test_set(real_data_dir) -> FashionTestSet:
    found, note = load_test_set(str(real_data_dir))
    assert found is not None and note is None
    return found


def test_random_test_images_and_the_live_disagreements(models, test_set):
    from fmnist.onnx_model import OnnxModel

    client = TestClient(create_app(models, test_set=test_set))
    item = client.get("/v1/test-images/random").json()
    assert 0 <= item["index"] < 10_000 and item["class"] == CLASS_NAMES[item["label"]]
    png = client.get(f"/v1/test-images/{item['index']}.png")
    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(np.array(Image.open(io.BytesIO(png.content))), test_set.images[item["index"]])
    assert client.get("/v1/test-images/10000.png").status_code == 404
    assert client.get("/v1/models").json()["test_images"] is True

    classes = [OnnxModel(m.path).logits(test_set.images).argmax(1) for m in models]
    differ = np.flatnonzero(classes[0] != classes[1])
    assert 0 < len(differ) < 10_000
    body = client.get("/v1/disagreements", params={"limit": 5, "offset": 2}).json()
    assert body["total"] == len(differ) and body["same_class"] == 10_000 - len(differ)
    assert [row["index"] for row in body["disagreements"]] == differ[2:7].tolist()
    for row in body["disagreements"]:
        got = [p["class"] for p in row["predictions"]]
        assert got == [CLASS_NAMES[c[row["index"]]] for c in classes] and got[0] != got[1]
        assert [p["correct"] for p in row["predictions"]] == [c[row["index"]] == row["label"] for c in classes]
    assert body["accuracy"]["keras"] == pytest.approx(float((classes[0] == test_set.labels).mean()))


def test_without_the_data_the_test_set_features_are_off_with_a_note(models, tmp_path, sample):
    found, note = load_test_set(str(tmp_path))
    assert found is None and str(tmp_path) in note and "\n" not in note
    client = TestClient(create_app(models, test_set=None, note=note))
    listed = client.get("/v1/models").json()
    assert listed["test_images"] is False and listed["note"] == note
    for path in ("/v1/test-images/random", "/v1/test-images/3.png", "/v1/disagreements"):
        response = client.get(path)
        assert response.status_code == 404 and response.json() == {"error": note, "code": "no_test_data"}
    assert client.post("/v1/predict", files={"image": ("a.jpg", sample, "image/jpeg")}).status_code == 200
