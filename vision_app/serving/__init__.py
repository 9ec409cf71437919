"""Serving the manifest's models from a Triton Inference Server: the model-repository export
(`models export-triton`), the model names/versions and expected tensors the Triton engine checks, a local
PyTriton test server, and the several-clients benchmark. Never imports PySide6 or tritonclient at import
time."""
