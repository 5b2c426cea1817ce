"""Other execution providers: run where they exist, skip cleanly elsewhere.

`make test-openvino` runs this file (and the rest of tests/runtime) in a venv holding
onnxruntime-openvino; CUDA tests run on a machine with a GPU and onnxruntime-gpu.
"""

import os

import onnxruntime as ort
import pytest

from traductor.runtime import Translator

from ..conftest import TINY_MODEL

REF_TEXTS = ["casa perro gato", "sol luna agua fuego tierra", "rey", "monte vino pan río mar cielo"]


def _needs(provider: str):
    return pytest.mark.skipif(
        provider not in ort.get_available_providers(), reason=f"{provider} not in this onnxruntime"
    )


@pytest.fixture(scope="module")
def cpu_outputs():
    tr = Translator(TINY_MODEL, variant="fp32", providers=("cpu",))
    return {b: tr.translate(REF_TEXTS, beam_size=b) for b in (1, 4)}


@_needs("OpenVINOExecutionProvider")
def test_openvino_translates_like_cpu(cpu_outputs):
    tr = Translator(
        TINY_MODEL,
        variant="fp32",
        providers=("openvino",),
        provider_options={"openvino": {"device_type": "CPU"}},
    )
    assert tr.providers[0] == "OpenVINOExecutionProvider"
    for beam, expected in cpu_outputs.items():
        assert tr.translate(REF_TEXTS, beam_size=beam) == expected


@_needs("CUDAExecutionProvider")
@pytest.mark.gpu
def test_cuda_translates_like_cpu(cpu_outputs):
    tr = Translator(TINY_MODEL, variant="fp32", providers=("cuda",))
    assert tr.providers[0] == "CUDAExecutionProvider"
    for beam, expected in cpu_outputs.items():
        assert tr.translate(REF_TEXTS, beam_size=beam) == expected


@pytest.mark.skipif(
    not os.environ.get("TRADUCTOR_TEST_PROVIDER"),
    reason="set TRADUCTOR_TEST_PROVIDER to require a provider",
)
def test_the_provider_this_run_asks_for_is_really_used():
    name = os.environ["TRADUCTOR_TEST_PROVIDER"]
    tr = Translator(TINY_MODEL, providers=(name,))
    from traductor.runtime import PROVIDER_ALIASES

    assert tr.providers[0] == PROVIDER_ALIASES.get(name, name)
    assert tr.translate("casa perro") == "perro casa"


def test_iobinding_decoder_gives_the_same_tokens_as_the_numpy_decoder():
    """The device-resident (IOBinding) decoder, exercised with CPU memory where no GPU exists."""
    import json

    from traductor.runtime.decoder import DeviceStepDecoder, OnnxStepDecoder
    from traductor.runtime.search import BeamSearch, GreedySearch

    tr = Translator(TINY_MODEL, variant="fp32")
    ref = json.loads((TINY_MODEL / "reference.json").read_text())
    src = ref["source_ids"]
    ids, mask = tr._pad(src)
    limits = [tr._limit(s) for s in src]
    st = tr.config.special_tokens
    for make in (
        lambda r: OnnxStepDecoder(tr.model, ids, mask, r),
        lambda r: DeviceStepDecoder(tr.model, ids, mask, r, device="cpu"),
    ):
        greedy = GreedySearch(st.bos_id, st.eos_id).search(make(1), limits)
        beam = BeamSearch(st.bos_id, st.eos_id, 4, 1.0, 3).search(make(4), limits)
        assert [h[0].tokens for h in greedy] == ref["greedy"]
        assert [[h.tokens for h in nb] for nb in beam] == ref["beam4"]


def test_variant_is_chosen_for_the_provider():
    from traductor.runtime.onnx_model import choose_variant
    from traductor.runtime.package import read_config

    cfg = read_config(TINY_MODEL)
    assert choose_variant(cfg, ["CPUExecutionProvider"]) == "int8"
    assert choose_variant(cfg, ["OpenVINOExecutionProvider", "CPUExecutionProvider"]) == "fp32"


@pytest.mark.skipif(
    "OpenVINOExecutionProvider" not in ort.get_available_providers(),
    reason="OpenVINOExecutionProvider not in this onnxruntime",
)
def test_int8_on_openvino_is_a_clear_error():
    from traductor.runtime import ModelError

    with pytest.raises(
        ModelError, match="does not run on OpenVINOExecutionProvider.*use variant 'fp32'"
    ):
        Translator(TINY_MODEL, variant="int8", providers=("openvino",))
    assert Translator(TINY_MODEL, providers=("openvino",)).variant == "fp32"
