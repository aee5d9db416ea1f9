"""``segloop serve``: the exported model over HTTP (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segloop.cli_options import ParamsOption, SetOption, option_overrides, params_from_cli

app = typer.Typer(help="Serve an export over HTTP.")


@app.command()
def serve(
    export_dir: Annotated[
        Path | None, typer.Argument(help="export directory [serve.export_dir]")
    ] = None,
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    backend: Annotated[str | None, typer.Option(help="ort-cpu | ort-cuda | ort-trt | trt")] = None,
    host: Annotated[str | None, typer.Option(help="bind address [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [8080]")] = None,
) -> None:
    """POST /v1/segment, GET /v1/model, /healthz, /readyz, /metrics."""
    import uvicorn

    from inference_server.metadata import read_metadata
    from inference_server.server.app import create_app

    extra = list(overrides or [])
    options: dict[str, object] = {
        "export_dir": export_dir,
        "backend": backend,
        "host": host,
        "port": port,
    }
    extra += option_overrides("serve", options)
    params = params_from_cli(params_path, extra).serve
    read_metadata(params.export_dir)  # a clear error before the server starts
    uvicorn.run(
        create_app(params.export_dir, params),
        host=params.host,
        port=params.port,
        log_level="info",
        access_log=False,
    )
