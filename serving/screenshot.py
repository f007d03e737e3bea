"""`python -m serving.screenshot MODEL... --out docs/images/serve.png`: the README's picture of
the page, regenerated: a real server, headless Chromium, one synthetic product photo made from a
test image (so the picture shows the conversion to 28x28) classified by every model.
`make screenshot MODELS="RUN_OR_ONNX RUN_OR_ONNX"` runs it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from fmnist.datasets import load_fashion_mnist
from fmnist.synthetic_photos import photo_jpeg
from serving.browser import start_chromium
from serving.models import resolve, split_spec
from serving.process import Server

DEFAULT_TEST_IMAGE = 0  # an ankle boot
WINDOW = (1280, 900)
WAIT_S = 30


def take(models: list[str], out: Path, test_image: int = DEFAULT_TEST_IMAGE, data_dir: str | None = None) -> Path:
    from selenium.webdriver.support.ui import WebDriverWait

    specs = []
    for spec in models:
        name, path = split_spec(spec)
        onnx = resolve(path, data_dir, lambda line: print(line, file=sys.stderr))
        specs.append(f"{name}={onnx}" if name else str(onnx))
    data = load_fashion_mnist(data_dir, download=False)
    with tempfile.TemporaryDirectory(prefix="fmnist-screenshot-") as tmp:
        photo = Path(tmp) / f"synthetic-photo-of-test-image-{test_image}.jpg"
        photo.write_bytes(photo_jpeg(data.test_images[test_image], np.random.default_rng(test_image)))
        with Server(specs, ("--no-access-log",), env={"FMNIST_DATA_DIR": str(data.data_dir)}) as server:
            driver = start_chromium(WINDOW, Path(tmp) / "profile")
            try:
                driver.get(server.url + "/")
                wait = WebDriverWait(driver, WAIT_S)
                wait.until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
                driver.find_element("id", "upload").send_keys(str(photo))
                wait.until(lambda d: d.find_element("id", "result").get_attribute("data-seq") == "1")
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
            finally:
                driver.quit()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.screenshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="exported .onnx files or run directories")
    parser.add_argument("--out", type=Path, default=Path("docs/images/serve.png"))
    parser.add_argument("--test-image", type=int, default=DEFAULT_TEST_IMAGE, help="which test image to photograph")
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: $FMNIST_DATA_DIR, then the user cache)")
    args = parser.parse_args(argv)
    print(f"written: {take(args.models, args.out, args.test_image, args.data_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
