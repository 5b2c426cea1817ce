"""The int8 variant's products: per-row scales, exact integer math on any x86-64 CPU."""

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from traductor.export.quantize import ACT_MAX, WEIGHT_MAX, quantize_int8
from traductor.runtime import Translator
from traductor.runtime.package import write_manifest

from .conftest import TINY_MODEL
from .runtime.test_batch_invariance import batch_vs_single_differences, random_sources


def _product_graph(w: np.ndarray, bias: np.ndarray, relu: bool, tmp_path):
    """x (rows, 1, K) -> [Relu] -> MatMul(W) -> Add(bias), quantized by the exporter's quantizer."""
    k, n = w.shape
    nodes = [helper.make_node("Relu", ["x"], ["h"])] if relu else []
    nodes += [
        helper.make_node("MatMul", ["h" if relu else "x", "W"], ["p"]),
        helper.make_node("Add", ["p", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "product",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 1, n])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(
        str(tmp_path / "int8.onnx"), so, providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(None, {"x": x.astype(np.float32)})[0]


@pytest.mark.parametrize("relu", [False, True], ids=["signed", "after-relu"])
def test_int8_product_is_exact_at_the_kernel_extremes(tmp_path, relu):
    """Integer inputs at the ends of the ranges, so quantization itself is exact: the product must
    then equal x @ W. Adjacent large u8 x s8 pairs are where AVX2 (no VNNI) kernels saturate
    16-bit sums; 7-bit weights keep them in range, so this holds on every x86-64 CPU."""
    rng = np.random.default_rng(0)
    k, n = 64, 24
    w = rng.integers(-WEIGHT_MAX, WEIGHT_MAX + 1, (k, n)).astype(np.float32)
    w[:, 0], w[:, 1], w[:, 2] = (
        WEIGHT_MAX,
        -WEIGHT_MAX,
        np.where(np.arange(k) % 2, WEIGHT_MAX, -WEIGHT_MAX),
    )
    w[0, :] = WEIGHT_MAX  # every column reaches the largest weight: column scale 1
    levels = 2 * ACT_MAX + 1 if relu else ACT_MAX
    x = rng.integers(-levels if not relu else 0, levels + 1, (6, 1, k)).astype(np.float32)
    x[0], x[1] = levels, -levels if not relu else 0
    x[2, 0, ::2], x[2, 0, 1::2] = levels, 0
    x[:, 0, -1] = levels  # every row reaches its largest level: row scale 1 (up to float rounding)
    bias = np.zeros(n, dtype=np.float32)
    y = _product_graph(w, bias, relu, tmp_path)(x)
    exact = np.maximum(x, 0) @ w if relu else x @ w
    np.testing.assert_allclose(y, exact, rtol=1e-5, atol=1e-2)


def test_int8_rows_are_computed_independently(tmp_path):
    rng = np.random.default_rng(1)
    w, bias = (
        rng.normal(0, 0.05, (96, 40)).astype(np.float32),
        rng.normal(0, 1, 40).astype(np.float32),
    )
    run = _product_graph(w, bias, False, tmp_path)
    x = rng.normal(0, 1, (16, 1, 96)).astype(np.float32)
    x[3] *= 50  # one row with a much larger range must not change the others' scales
    batch = run(x)
    for r in range(len(x)):
        assert np.array_equal(run(x[r : r + 1])[0], batch[r])
    np.testing.assert_allclose(
        batch, x @ w + bias, atol=0.05 * np.abs(x @ w).max(axis=-1, keepdims=True).max()
    )


@pytest.mark.parametrize("relu", [False, True], ids=["signed", "after-relu"])
def test_rows_of_zeros_give_the_bias(tmp_path, relu):
    rng = np.random.default_rng(2)
    w, bias = (
        rng.normal(0, 0.05, (32, 8)).astype(np.float32),
        rng.normal(0, 1, 8).astype(np.float32),
    )
    x = rng.normal(0, 1, (3, 1, 32)).astype(np.float32)
    x[1] = 0 if not relu else -np.abs(x[1])  # after Relu this row is all zeros
    y = _product_graph(w, bias, relu, tmp_path)(x)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y[1, 0], bias)


def test_invariance_check_catches_per_tensor_scaling(tmp_path):
    """The batch-invariance comparison fails on the previous int8 scheme (one activation scale per
    tensor): so its passing on the per-row scheme means something."""
    pkg = tmp_path / "per-tensor"
    shutil.copytree(TINY_MODEL, pkg)
    for graph in ("encoder", "decoder"):
        quantize_int8(pkg / f"{graph}.onnx", pkg / f"{graph}.int8.onnx", per_row=False)
    write_manifest(pkg)
    tr = Translator(pkg, variant="int8", intra_threads=1)
    assert (
        len(
            batch_vs_single_differences(
                tr, random_sources(seed=3, n=20), beam_size=1, batch_size=20
            )
        )
        > 0
    )
