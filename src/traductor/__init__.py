"""traductor: offline Transformer translation. Trained in PyTorch, exported to ONNX, run on ONNX
Runtime."""

__version__ = "0.1.0"
