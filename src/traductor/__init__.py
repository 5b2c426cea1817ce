"""traductor: offline Transformer translation. Train in PyTorch, export to ONNX, run with ONNX Runtime."""

__version__ = "0.1.0"
