"""``segloop serve`` over real HTTP: a uvicorn subprocess on a free loopback port."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_server.backends import open_labeler
from inference_server.frames import fit_frame, restore_map
from inference_server.metadata import read_metadata
from tests.conftest import TinyExport

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(export_dir: Path, *sets: str, token: str | None = None) -> Server:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "SEGLOOP_SERVE_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    if token is not None:
        env["SEGLOOP_SERVE_TOKEN"] = token
    args = [sys.executable, "-m", "segloop.cli", "serve", str(export_dir), "--port", str(port)]
    for item in sets:
        args += ["--set", item]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            if httpx.get(f"{url}/readyz", headers=headers, timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready")


def _stop(server: Server) -> None:
    server.process.terminate()
    server.process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tiny_export: TinyExport) -> Iterator[Server]:
    running = _start(tiny_export.export_dir, "serve.max_batch=4", "serve.max_wait_ms=20")
    yield running
    _stop(running)


@pytest.fixture(scope="module")
def strict_server(tiny_export: TinyExport) -> Iterator[Server]:
    running = _start(
        tiny_export.export_dir,
        "serve.max_body_bytes=200000",
        "serve.max_pixels=100000",
        "serve.queue_limit=1",
        "serve.max_batch=1",
        "serve.threads=1",
        token=TOKEN,
    )
    yield running
    _stop(running)


def _png(image: np.ndarray) -> bytes:
    data = (
        cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    )
    return cv2.imencode(".png", data)[1].tobytes()


def _frame(seed: int, size: tuple[int, int] = (40, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _expected_label(export_dir: Path, image: np.ndarray) -> np.ndarray:
    """What segloop label computes for the frame: fit, backend, restore."""
    meta = read_metadata(export_dir)
    with open_labeler(export_dir, "ort-cpu", metadata=meta) as labeler:
        maps = labeler.label(fit_frame(image, meta)[None])
    return restore_map(maps.label[0], image.shape[:2], meta)


def _decode_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_health_ready_and_model(server: Server, tiny_export: TinyExport) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"ready": True}
    model = httpx.get(f"{server.url}/v1/model").json()
    assert model == json.loads((tiny_export.export_dir / "metadata.json").read_text())


def test_segment_returns_the_label_segloop_label_writes(
    server: Server, tiny_export: TinyExport, tmp_path: Path
) -> None:
    image = _frame(1)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "f.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    labeled = subprocess.run(
        [sys.executable, "-m", "segloop.cli", "label", str(tmp_path / "in"), "--export-dir",
         str(tiny_export.export_dir), "--out", str(tmp_path / "out")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120,
    )  # fmt: skip
    assert labeled.returncode == 0, labeled.stderr
    written = cv2.imread(str(tmp_path / "out" / "label" / "f.png"), cv2.IMREAD_UNCHANGED)
    raw = httpx.post(f"{server.url}/v1/segment", content=_png(image),
                     headers={"content-type": "image/png"})  # fmt: skip
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert np.array_equal(_decode_png(raw.content), written)
    multipart = httpx.post(f"{server.url}/v1/segment", files={"image": ("f.png", _png(image))})
    assert multipart.status_code == 200
    assert np.array_equal(_decode_png(multipart.content), written)


def test_json_format_and_chosen_maps(server: Server) -> None:
    image = _frame(2, (50, 70))
    response = httpx.post(
        f"{server.url}/v1/segment?format=json&outputs=label,confidence,reliability,overlay",
        content=_png(image),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["height"], body["width"]) == (50, 70)
    assert sum(body["class_fractions"].values()) == pytest.approx(1.0)
    assert 0 <= body["mean_confidence"] <= 1 and 0 <= body["reliable_fraction"] <= 1
    for name in ("label", "confidence", "reliability"):
        assert _decode_png(base64.b64decode(body["maps"][name])).shape == (50, 70)
    assert _decode_png(base64.b64decode(body["maps"]["overlay"])).shape == (50, 70, 3)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"not an image", "headers": {"content-type": "image/png"}}, 400),
        ({"content": _png(_frame(3))[:60], "headers": {"content-type": "image/png"}}, 400),
        ({"content": _png(_frame(3))[:-30], "headers": {"content-type": "image/png"}}, 400),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ({"files": {"other": ("f.png", _png(_frame(3)))}}, 422),
    ],
    ids=["garbage", "truncated-header", "truncated-data", "content-type", "missing-field"],
)
def test_bad_input_gets_a_json_error(server: Server, kwargs: dict, status: int) -> None:
    response = httpx.post(f"{server.url}/v1/segment", **kwargs)
    assert response.status_code == status
    assert response.json()["status"] == status and response.json()["error"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_bad_query_and_unknown_paths(server: Server) -> None:
    post = {"content": _png(_frame(4)), "headers": {"content-type": "image/png"}}
    assert httpx.post(f"{server.url}/v1/segment?format=xml", **post).status_code == 422
    assert httpx.post(f"{server.url}/v1/segment?outputs=depth", **post).status_code == 422
    missing = httpx.get(f"{server.url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_concurrent_requests_get_their_own_answers(server: Server, tiny_export: TinyExport) -> None:
    images = [_frame(10 + i, (32 + 8 * (i % 3), 64)) for i in range(12)]

    def call(image: np.ndarray) -> np.ndarray:
        response = httpx.post(f"{server.url}/v1/segment", content=_png(image),
                              headers={"content-type": "image/png"}, timeout=60)  # fmt: skip
        assert response.status_code == 200
        return _decode_png(response.content)

    before = httpx.get(f"{server.url}/metrics").text
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(call, images))
    for image, answer in zip(images, answers, strict=True):
        assert np.array_equal(answer, _expected_label(tiny_export.export_dir, image))
    after = httpx.get(f"{server.url}/metrics").text

    def value(text: str, name: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        return float(line.split()[-1])

    assert (
        value(after, "segloop_images_processed_total")
        >= value(before, "segloop_images_processed_total") + 12
    )
    assert value(after, 'segloop_responses_total{code="200"}') >= 12
    assert value(after, "segloop_batch_size_count") > value(before, "segloop_batch_size_count")
    assert value(after, "segloop_request_latency_seconds_count") >= 12
    assert "segloop_queue_depth" in after


def test_token_limits_and_overload(strict_server: Server) -> None:
    url = strict_server.url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/healthz").status_code == 200  # no token needed
    assert httpx.get(f"{url}/v1/model").status_code == 401
    assert httpx.get(f"{url}/v1/model", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/v1/model", headers=auth).status_code == 200
    png = {**auth, "content-type": "image/png"}
    big_body = httpx.post(f"{url}/v1/segment", content=b"\0" * 300_000, headers=png)
    assert big_body.status_code == 413
    flat = np.zeros((400, 400, 3), np.uint8)  # 160000 pixels in a small PNG
    many_pixels = httpx.post(f"{url}/v1/segment", content=_png(flat), headers=png)
    assert many_pixels.status_code == 413 and "pixels" in many_pixels.json()["error"]

    frame = _png(_frame(6, (256, 256)))

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{url}/v1/segment", content=frame, headers=png, timeout=60)

    with ThreadPoolExecutor(48) as pool:
        responses = list(pool.map(call, range(96)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 503} and 503 in statuses and 200 in statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and refused.json()["status"] == 503
    assert httpx.get(f"{url}/readyz", headers=auth).status_code == 200


images = st.builds(
    lambda h, w, mode, seed: (h, w, mode, seed),
    st.integers(1, 96),
    st.integers(1, 96),
    st.sampled_from(["gray", "rgb", "rgba", "gray16", "rgb16", "jpeg"]),
    st.integers(0, 2**16),
)


def _encode(h: int, w: int, mode: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    shapes = {"gray": (h, w), "rgb": (h, w, 3), "rgba": (h, w, 4), "gray16": (h, w),
              "rgb16": (h, w, 3), "jpeg": (h, w, 3)}  # fmt: skip
    dtype = np.uint16 if mode.endswith("16") else np.uint8
    array = rng.integers(0, np.iinfo(dtype).max, shapes[mode], dtype=dtype)
    return cv2.imencode(".jpg" if mode == "jpeg" else ".png", array)[1].tobytes()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.binary(max_size=2048), images.map(lambda a: _encode(*a))))
def test_fuzzed_uploads_never_get_a_server_error(server: Server, body: bytes) -> None:
    for kwargs in (
        {"content": body, "headers": {"content-type": "image/png"}},
        {"files": {"image": ("x", body)}},
    ):
        response = httpx.post(f"{server.url}/v1/segment", timeout=60, **kwargs)
        assert response.status_code < 500 or response.status_code == 503, response.text
        assert response.status_code == 200 or "error" in response.json()
