"""The HTTP server (``segloop serve``): an ASGI app over one labeling backend."""
