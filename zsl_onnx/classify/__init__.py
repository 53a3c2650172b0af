"""zsl-classify: pre-annotate a corpus with a zero-shot model, streaming and resumable.

An application over the runtime's public API (``zsl_onnx``) and its internal seam
(``zsl_onnx.internals``); it imports no private ``zsl_onnx._*`` module. The command is
``cli.main``; a run is ``run.run`` over a ``options.ClassifyOptions``. Importing this package
imports none of its modules, so ``zsl_onnx.ray`` can share ``writers`` without the command.
"""

__all__: list[str] = []
