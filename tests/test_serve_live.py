"""`fmnist serve` as a real server process on the loopback address (slow tier): the bounded load
test (zero errors, memory steady over the last thousand requests, it stops by itself), bad input
over real HTTP never takes it down, --workers, and the page in headless Chromium driven by
Selenium (upload, the 28x28 preview, a drawn stroke, a random test image, the disagreement view,
the page without the data). Screenshots go to pytest's tmp_path."""

from __future__ import annotations

import http.client
import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from serving.process import HOST, Server  # noqa: E402

pytestmark = pytest.mark.slow
WAIT_S = 30


@pytest.fixture(scope="module")
def model_args(contract_models) -> list[str]:
    return [str(contract_models["keras"]), str(contract_models["lightning"])]


@pytest.fixture(scope="module")
def server(model_args, real_data_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with Server(model_args, ("--no-access-log",), env={"FMNIST_DATA_DIR": str(real_data_dir)}, log=log) as running:
        yield running


def post(
    port: int, body: bytes, content_type: str, path: str = "/v1/predict", headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "live-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def jpeg(test_image: np.ndarray, scale: int = 8) -> bytes:
    """A test image as a dark-on-white RGB JPEG photo (converted by the server)."""
    photo = Image.fromarray(255 - test_image).resize((28 * scale, 28 * scale)).convert("RGB")
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_the_bounded_load_test_has_no_errors_and_steady_memory(model_args, real_data_dir, tmp_path):
    from serving.loadtest import markdown, run_loadtest, write_results

    started = time.monotonic()
    result = run_loadtest(
        model_args,
        requests=2000,
        concurrency=(1, 16),
        data_dir=str(real_data_dir),
        max_seconds=600,
        log_file=tmp_path / "serve.log",
        log=lambda _: None,
    )
    assert result["checks"] == {
        "zero_errors": True,
        "memory_within_10_percent": True,
        "finished_before_deadline": True,
        "server_alive_at_end": True,
        "server_stopped_cleanly": True,
    }, json.dumps(result, indent=1)[-3000:]
    assert [(p["concurrency"], p["requests"], p["errors"]) for p in result["phases"]] == [(1, 2000, 0), (16, 2000, 0)]
    for p in result["phases"]:
        assert 0 < p["p50_ms"] <= p["p99_ms"] <= p["max_ms"] and p["requests_per_s"] > 0
    memory = result["memory_bytes"]
    assert memory["after_last_1000"] <= 1.10 * memory["before_last_1000"]
    assert 0 < result["start_seconds"] < 120 and time.monotonic() - started < 600
    write_results(result, tmp_path / "results")
    assert "| 16 | 2,000 | 0 |" in (tmp_path / "results" / "loadtest.md").read_text() == markdown(result)
    assert json.loads((tmp_path / "results" / "loadtest.json").read_text())["checks"] == result["checks"]


def test_bad_input_over_real_http_never_takes_the_server_down(server, real_data_dir):
    from fmnist.datasets import load_fashion_mnist

    image = load_fashion_mnist(str(real_data_dir), download=False).test_images[0]
    good, kind = multipart([("shoe.jpg", jpeg(image))])
    status, first = post(server.port, good, kind)
    assert status == 200
    cases = [
        (*multipart([("a.txt", b"plain words")]), 422, "not_an_image"),
        (*multipart([("empty.png", b"")]), 400, "empty_upload"),
        (*multipart([("cut.jpg", jpeg(image)[:300])]), 422, "corrupt_image"),
        (*multipart([("x.jpg", jpeg(image))] * 65), 413, "too_many_images"),
        (b"\0" * 5_000_001, "image/png", 413, "upload_too_large"),
        (b"hello", "text/plain", 415, "unsupported_media_type"),
    ]
    for body, content_type, want_status, want_code in cases:
        status, answer = post(server.port, body, content_type)
        assert (status, answer["code"]) == (want_status, want_code), answer
    status, answer = post(server.port, good, kind, path="/v1/predict?model=nope")
    assert (status, answer["code"]) == (404, "unknown_model")
    # A body announced far over any limit is refused without being read.
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and json.loads(response.read())["code"] == "upload_too_large"
    conn.close()
    # A client that goes away in the middle of its upload.
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Content-Length", "100000")
    conn.endheaders(b"\x89PNG\r\n")
    conn.close()
    time.sleep(0.2)
    assert server.process.poll() is None
    status, again = post(server.port, good, kind)
    assert status == 200 and again["images"][0]["predictions"] == first["images"][0]["predictions"]
    assert server.get_json("/healthz") == {"status": "ok", "models": 2}


def test_several_worker_processes_answer(model_args, tmp_path):
    with Server(
        model_args,
        ("--workers", "2", "--no-access-log"),
        env={"FMNIST_DATA_DIR": str(tmp_path)},
        log=tmp_path / "serve.log",
    ) as running:
        blank = io.BytesIO()
        Image.new("L", (28, 28)).save(blank, "PNG")
        body, kind = multipart([("a.png", blank.getvalue())])
        answers = {json.dumps(post(running.port, body, kind)[1]["images"][0]["predictions"]) for _ in range(20)}
        assert len(answers) == 1  # every worker runs the same models
        listed = running.get_json("/v1/models")
        assert listed["test_images"] is False and str(tmp_path) in listed["note"]
        assert running.rss() > 0
    assert running.process.returncode == 0


# ---- the page in a real browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from serving.browser import find_browser, start_chromium

    if find_browser() is None:
        message = "Chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)
    driver = start_chromium()
    yield driver
    driver.quit()


def wait(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except TimeoutException:
        errors = driver.find_element("id", "error").text
        raise AssertionError(f"the page did not show {what} within {WAIT_S} s (error shown: {errors!r})") from None


def shown_answers(driver) -> list[tuple[str, list[str], list[float]]]:
    cards = driver.find_elements("css selector", "#cards .card")
    return [
        (
            c.get_attribute("data-model"),
            [r.get_attribute("data-class") for r in c.find_elements("css selector", ".bar-row")],
            [float(r.get_attribute("data-probability")) for r in c.find_elements("css selector", ".bar-row")],
        )
        for c in cards
    ]


def result_seq(driver) -> int:
    return int(driver.find_element("id", "result").get_attribute("data-seq") or 0)


def test_the_page_in_headless_chromium(browser, server, real_data_dir, tmp_path):
    from selenium.webdriver import ActionChains

    from fmnist.datasets import load_fashion_mnist

    image = load_fashion_mnist(str(real_data_dir), download=False).test_images[0]
    picture = tmp_path / "ankle-boot-photo.jpg"
    picture.write_bytes(jpeg(image))
    body, kind = multipart([(picture.name, picture.read_bytes())])
    status, api = post(server.port, body, kind, path="/v1/predict?include_input=true")
    assert status == 200
    want = [
        (a["model"], [r["class"] for r in a["top_k"]], [r["probability"] for r in a["top_k"]])
        for a in api["images"][0]["predictions"]
    ]

    browser.get(server.url + "/")
    wait(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true", "the models")
    assert "keras" in browser.find_element("id", "model-list").text
    assert browser.find_element("id", "no-data-note").is_displayed() is False

    # 1. upload: the classes shown are the API's, and the 28x28 preview is the API's input image
    browser.find_element("id", "upload").send_keys(str(picture))
    wait(browser, lambda d: result_seq(d) == 1, "the upload's answer")
    assert shown_answers(browser) == want
    verdict = browser.find_element("id", "verdict").text
    assert ("agree" in verdict) == api["images"][0]["agree"]
    preview = browser.execute_script(
        "const c = document.getElementById('preview');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data).filter((_, i) => i % 4 === 0);"
    )
    assert preview == api["images"][0]["pixels"] and max(preview) > 0
    assert browser.find_element("id", "preview").is_displayed()
    assert browser.execute_script("return document.getElementById('original').naturalWidth") == 224  # the upload itself
    browser.save_screenshot(str(tmp_path / "upload.png"))

    # 2. a stroke on the canvas gets an answer from every model
    canvas = browser.find_element("id", "draw")
    ActionChains(browser).move_to_element_with_offset(canvas, -40, -60).click_and_hold().move_by_offset(
        30, 50
    ).move_by_offset(30, 50).release().perform()
    wait(browser, lambda d: result_seq(d) == 2, "the drawing's answer")
    assert browser.find_element("id", "result").get_attribute("data-source") == "drawing"
    drawn = shown_answers(browser)
    assert [m for m, _, _ in drawn] == ["keras", "lightning"] and all(len(c) == 3 for _, c, _ in drawn)
    assert "drawing.png" in browser.find_element("id", "source").text
    browser.save_screenshot(str(tmp_path / "drawing.png"))

    # 3. a random test image, with its true class
    browser.find_element("id", "random-test").click()
    wait(browser, lambda d: result_seq(d) == 3, "a random test image's answer")
    assert "True class:" in browser.find_element("id", "source").text

    # 4. the disagreement view lists the API's disagreements; a click opens one
    browser.find_element("id", "tab-disagree").click()
    wait(browser, lambda d: d.find_elements("css selector", "#disagree-grid .cell"), "the disagreement grid")
    listed = server.get_json("/v1/disagreements?limit=60")
    cells = browser.find_elements("css selector", "#disagree-grid .cell")
    assert [int(c.get_attribute("data-index")) for c in cells] == [r["index"] for r in listed["disagreements"]]
    assert f"{listed['total']:,}" in browser.find_element("id", "disagree-summary").text
    browser.save_screenshot(str(tmp_path / "disagreements.png"))
    cells[0].click()
    wait(browser, lambda d: result_seq(d) == 4, "the clicked test image's answer")
    assert f"test image {listed['disagreements'][0]['index']}" in browser.find_element("id", "source").text
    assert "disagree" in browser.find_element("id", "verdict").text
    assert not browser.find_element("id", "error").is_displayed()


def test_the_page_without_the_data_hides_the_test_image_features(browser, model_args, tmp_path):
    with Server(model_args, ("--no-access-log",), env={"FMNIST_DATA_DIR": str(tmp_path)}) as running:
        browser.get(running.url + "/")
        wait(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true", "the models")
        note = browser.find_element("id", "no-data-note")
        assert note.is_displayed() and str(tmp_path) in note.text
        assert not browser.find_element("id", "random-test").is_displayed()
        png = tmp_path / "blank.png"
        Image.new("L", (40, 30), 255).save(png)
        browser.find_element("id", "upload").send_keys(str(png))
        wait(browser, lambda d: result_seq(d) >= 1, "the upload's answer")  # everything else works
        assert not browser.find_element("id", "tab-disagree").is_displayed()
        browser.save_screenshot(str(tmp_path / "no-data.png"))
