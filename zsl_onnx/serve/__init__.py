"""zsl-serve: an HTTP server for one zsl-onnx model, with dynamic batching and hard limits.

Built on the runtime's public API and ``zsl_onnx.internals`` only. Needs the ``[serve]`` extra (FastAPI, uvicorn); the
command is ``zsl-serve BUNDLE_OR_MODEL_ID`` or ``python -m zsl_onnx.serve``. See docs/serve.md.
"""

from .cli import main

__all__ = ["main"]
