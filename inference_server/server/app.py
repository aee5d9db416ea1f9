"""The ASGI app (Starlette): ``/v1/segment``, ``/v1/model``, ``/healthz``, ``/readyz``,
``/metrics``. Every error is a JSON body ``{"error": ..., "status": ...}``; no request can
take the server down. No endpoint accepts a file path; the export directory is only read.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from inference_server.backends import open_labeler
from inference_server.backends.base import RELIABLE_LEVEL
from inference_server.frames import fit_frame, restore_map
from inference_server.metadata import ExportMetadata, read_metadata
from inference_server.server.batcher import MicroBatcher, Overloaded
from inference_server.server.metrics import ServerMetrics
from inference_server.server.uploads import RAW_TYPES, UploadError, decode_upload
from segloop.confidence_levels import mean_confidence
from segloop.imageio import colour_overlay, encode_png
from segloop.params import ServeParams

MAPS = ("label", "confidence", "reliability", "overlay")
RETRY_AFTER_S = "1"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers=headers)


def _png(array: np.ndarray) -> bytes:
    return encode_png(array, compression=1, fast=True)


class SegmentationService:
    """The model, its batcher and the server's metrics; built by the app's lifespan."""

    def __init__(self, export_dir: Path, params: ServeParams) -> None:
        self.export_dir = export_dir
        self.params = params
        self.metadata: ExportMetadata = read_metadata(export_dir)
        self.metrics = ServerMetrics(params.max_batch)
        self.palette = np.array(self.metadata.palette, dtype=np.uint8)
        self.backend = open_labeler(
            export_dir, params.backend, params.threads, metadata=self.metadata
        )
        self.batcher = MicroBatcher(
            self.backend, self.metrics, params.max_batch, params.max_wait_ms, params.queue_limit
        )
        self.ready = False
        self.token = os.environ.get(params.token_env) or None

    def warm_up(self) -> None:
        height, width = self.metadata.input_size
        self.backend.label(np.zeros((1, height, width, 3), np.uint8))
        self.ready = True

    async def segment(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The maps of one frame at its own size."""
        size = (image.shape[0], image.shape[1])
        maps = await self.batcher.label(fit_frame(image, self.metadata))
        out = {
            "label": restore_map(maps.label, size, self.metadata),
            "confidence": restore_map(maps.confidence, size, self.metadata),
        }
        if maps.reliability is not None:
            out["reliability"] = restore_map(maps.reliability, size, self.metadata)
        return out

    def overlay(self, image: np.ndarray, label: np.ndarray) -> np.ndarray:
        return colour_overlay(image, label, self.palette)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_bytes(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UploadError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
        try:
            async with request.form(max_files=1, max_fields=4, max_part_size=limit) as form:
                field = form.get("image")
                if not isinstance(field, UploadFile):
                    raise UploadError(422, "multipart upload needs a file field named 'image'")
                data = await field.read(limit + 1)
        except UploadError:
            raise
        except Exception as exc:  # malformed multipart
            raise UploadError(400, f"malformed multipart body ({type(exc).__name__})") from None
        if len(data) > limit:
            raise UploadError(413, f"image exceeds the limit of {limit} bytes")
        return data
    if content_type in RAW_TYPES:
        return await _read_body(request, limit)
    raise UploadError(
        415,
        f"content type {content_type or '(none)'!r}: send image/png, image/jpeg or "
        "multipart/form-data with an 'image' field",
    )


def create_app(export_dir: Path, params: ServeParams) -> Starlette:
    service_box: dict[str, SegmentationService] = {}

    def service() -> SegmentationService:
        return service_box["service"]

    async def segment(request: Request) -> Response:
        svc = service()
        start = time.perf_counter()
        fmt = request.query_params.get("format", "png")
        wanted = [m for m in request.query_params.get("outputs", "label").split(",") if m]
        if fmt not in ("png", "json"):
            return _error(422, "format must be png or json")
        unknown = sorted(set(wanted) - set(MAPS))
        if unknown or not wanted:
            return _error(422, f"outputs must be a comma list of {', '.join(MAPS)}")
        if fmt == "png" and len(wanted) != 1:
            return _error(422, "format=png returns one map; use format=json for several")
        if "reliability" in wanted and not svc.metadata.has_eln:
            return _error(422, "this export has no ELN: no reliability map")
        svc.batcher.in_flight += 1
        try:
            data = await _upload_bytes(request, svc.params.max_body_bytes)
            image = decode_upload(data, svc.params.max_pixels)
            maps = await svc.segment(image)
        except UploadError as exc:
            return _error(exc.status, exc.message)
        except Overloaded:
            return _error(503, "overloaded: the queue is full", {"Retry-After": RETRY_AFTER_S})
        finally:
            svc.batcher.in_flight -= 1
        if "overlay" in wanted:
            maps["overlay"] = svc.overlay(image, maps["label"])
        if fmt == "png":
            return Response(_png(maps[wanted[0]]), media_type="image/png")
        num = svc.metadata.num_classes
        counts = np.bincount(maps["label"].ravel(), minlength=num)[:num]
        body: dict[str, Any] = {
            "height": image.shape[0],
            "width": image.shape[1],
            "class_fractions": {
                name: float(counts[j] / maps["label"].size)
                for j, name in enumerate(svc.metadata.classes)
            },
            "mean_confidence": mean_confidence(maps["confidence"]),
            "reliable_fraction": None
            if "reliability" not in maps
            else float((maps["reliability"] >= RELIABLE_LEVEL).mean()),
            "maps": {name: base64.b64encode(_png(maps[name])).decode() for name in wanted},
            "latency_ms": round(1000 * (time.perf_counter() - start), 3),
        }
        return JSONResponse(body)

    async def model(request: Request) -> Response:
        return JSONResponse(service().metadata.model_dump(mode="json"))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready = "service" in service_box and service().ready
        return JSONResponse({"ready": ready}, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service().metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = SegmentationService(export_dir, params)
        service_box["service"] = svc
        svc.batcher.start()
        svc.warm_up()
        yield
        await svc.batcher.stop()
        svc.backend.close()

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Bearer-token auth (all but /healthz), JSON errors for anything unexpected, and
        the response counters."""
        start = time.perf_counter()
        svc = service_box.get("service")
        token = svc.token if svc is not None else None
        if token is not None and request.url.path != "/healthz":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                response: Response = _error(
                    401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
                )
                if svc is not None:
                    svc.metrics.request_done(401, None)
                return response
        try:
            response = await call_next(request)
        except Exception as exc:  # never a traceback page; the server keeps serving
            response = _error(500, f"internal error ({type(exc).__name__})")
        if response.status_code == 404:
            response = _error(404, f"no endpoint {request.url.path}")
        elif response.status_code == 405:
            response = _error(405, f"method {request.method} not allowed here")
        if svc is not None:
            latency = time.perf_counter() - start if request.url.path == "/v1/segment" else None
            svc.metrics.request_done(response.status_code, latency)
        return response

    app = Starlette(
        routes=[
            Route("/v1/segment", segment, methods=["POST"]),
            Route("/v1/model", model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
    )

    return app
