"""`traductor embeddings`: the t-SNE map and the neighbours JSON of a package's token embeddings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from traductor.runtime import embeddings
from traductor.runtime.package import InputError

from .conftest import TINY_MODEL, WORDS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# two "languages" of the tiny model's single-token words
SOURCE_WORDS, TARGET_WORDS = WORDS[:8], WORDS[8:]
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "es-en"


@pytest.fixture(scope="module")
def explain_extra():
    for module in ("sklearn", "matplotlib"):
        pytest.importorskip(module)


def write_corpus(path: Path, n: int = 200, seed: int = 0) -> Path:
    """Source lines from the first eight words, target lines from the other seven: each token has
    one side."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            src = " ".join(rng.choice(SOURCE_WORDS, rng.integers(2, 6)))
            tgt = " ".join(rng.choice(TARGET_WORDS, rng.integers(2, 6)))
            f.write(f"{src}\t{tgt}\n")
    return path


def args(tmp_path: Path, **kw) -> Namespace:
    base = dict(
        model=str(TINY_MODEL),
        out=str(tmp_path / "map.png"),
        json=None,
        corpus=str(tmp_path / "corpus.tsv"),
        top=12,
        neighbours=5,
        seed=0,
    )
    base.update(kw)
    return Namespace(**base)


@pytest.fixture(scope="module")
def tiny_map(explain_extra, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embeddings")
    write_corpus(out / "corpus.tsv")
    assert embeddings.embeddings_main(args(out)) == 0
    return out


def check_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].std()) > 0.01, "the image is blank"
    return image


def test_writes_a_png_and_a_json_with_the_requested_tokens(tiny_map):
    check_png(tiny_map / "map.png")
    report = json.loads(
        (tiny_map / "map.json").read_text(encoding="utf-8")
    )  # default: beside the PNG
    assert report["model"] == str(TINY_MODEL)
    assert report["embedding"] == "encoder.onnx:model.embed.weight"  # fp32 preferred
    assert len(report["tokens"]) == 12
    counts = [t["count"] for t in report["tokens"]]
    assert counts == sorted(counts, reverse=True)
    by_label = {t["label"]: t for t in report["tokens"]}
    assert all(
        t["token"] == "\u2581" + t["label"] for t in report["tokens"]
    )  # the word marker is dropped from labels
    for word in set(by_label) & set(SOURCE_WORDS):
        assert by_label[word]["language"] == "es" and by_label[word]["target_count"] == 0
    for word in set(by_label) & set(TARGET_WORDS):
        assert by_label[word]["language"] == "en" and by_label[word]["source_count"] == 0
    assert {t["language"] for t in report["tokens"]} == {"es", "en"}


def test_neighbours_are_sorted_by_cosine_and_exclude_the_token(tiny_map):
    report = json.loads((tiny_map / "map.json").read_text(encoding="utf-8"))
    for t in report["tokens"]:
        cosines = [n["cosine"] for n in t["neighbours"]]
        assert len(cosines) == 5
        assert cosines == sorted(cosines, reverse=True)
        assert all(-1.0 <= c <= 1.0 for c in cosines)
        assert t["token"] not in [n["token"] for n in t["neighbours"]]
    # the probes present in the tiny vocabulary, found without the word marker
    assert {"agua", "tierra", "rey"} <= set(report["probes"])
    assert "\u2581agua" not in [n["token"] for n in report["probes"]["agua"]]


def test_neighbours_match_a_direct_cosine_computation(tiny_map):
    report = json.loads((tiny_map / "map.json").read_text(encoding="utf-8"))
    matrix, tokenizer = embeddings.embedding_matrix(TINY_MODEL)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    pool = [tokenizer.token_to_id("\u2581" + w) for w in WORDS]
    first = report["tokens"][0]
    i = tokenizer.token_to_id(first["token"])
    sims = {tokenizer.id_to_token(j): float(unit[i] @ unit[j]) for j in pool if j != i}
    expected = sorted(sims.items(), key=lambda kv: -kv[1])[:5]
    assert [n["token"] for n in first["neighbours"]] == [t for t, _ in expected]
    assert [n["cosine"] for n in first["neighbours"]] == pytest.approx(
        [c for _, c in expected], abs=1e-4
    )


def test_json_path_and_int8_only_package(explain_extra, tmp_path):
    pkg = tmp_path / "int8-only"
    shutil.copytree(TINY_MODEL, pkg)
    (pkg / "encoder.onnx").unlink()
    (pkg / "decoder.onnx").unlink()
    write_corpus(tmp_path / "corpus.tsv")
    assert (
        embeddings.embeddings_main(
            args(
                tmp_path,
                model=str(pkg),
                out=str(tmp_path / "out" / "m.png"),
                json=str(tmp_path / "n.json"),
            )
        )
        == 0
    )
    check_png(tmp_path / "out" / "m.png")
    report = json.loads((tmp_path / "n.json").read_text(encoding="utf-8"))
    assert report["embedding"].startswith("encoder.int8.onnx:")
    assert len(report["tokens"]) == 12
    fp32, _ = embeddings.embedding_matrix(TINY_MODEL)
    int8, _ = embeddings.embedding_matrix(pkg)
    np.testing.assert_allclose(
        int8, fp32, atol=1e-3
    )  # the int8 graphs keep the embedding (fp32 or fp16)


@pytest.mark.skipif(
    not (SHIPPED / "encoder.onnx").is_file() or not (SHIPPED / "encoder.int8.onnx").is_file(),
    reason="needs both variants of the shipped model",
)
def test_shipped_int8_graph_holds_the_embedding_as_fp16(explain_extra):
    cfg = embeddings.read_config(SHIPPED)
    fp32, _ = embeddings._graph_embedding(SHIPPED / "encoder.onnx", cfg.io.input_ids, SHIPPED)
    half, where = embeddings._graph_embedding(
        SHIPPED / "encoder.int8.onnx", cfg.io.input_ids, SHIPPED
    )
    assert (
        where.endswith("_fp16")
        and half.dtype == np.float32
        and half.shape == fp32.shape == (cfg.dims.vocab_size, cfg.dims.d_model)
    )
    np.testing.assert_allclose(half, fp32, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(out="map.jpg"), r"--out must name a \.png file"),
        (dict(top=9), r"--top must be at least 10"),
        (dict(top=100_000), r"--top 100000 is larger than the model's vocabulary \(334 tokens\)"),
        (dict(top=20), r"uses only 15 distinct tokens .*pass --top 15 or less"),
        (dict(neighbours=0), r"--neighbours must be at least 1"),
        (dict(neighbours=15), r"--neighbours 15: .* pass --neighbours 14 or less"),
        (dict(top="many"), r"--top must be an integer"),
        (dict(corpus="no-such.tsv"), r"--corpus no-such\.tsv: no such file"),
        (
            dict(corpus=None, top=56),
            r"the tokenizer ranks only 55 tokens .*pass --top 55 or less, or --corpus FILE",
        ),
        (dict(model="no-such-model"), r"no model named 'no-such-model'"),
        (dict(model="./no/such/dir"), r"no such model directory"),
    ],
)
def test_bad_arguments_are_one_clear_line(explain_extra, tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    write_corpus(tmp_path / "corpus.tsv")
    with pytest.raises(InputError, match=message) as e:
        embeddings.embeddings_main(args(tmp_path, **change))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "map.png").exists()


def test_without_a_corpus_the_tokenizer_ranks_the_tokens(explain_extra, tmp_path):
    """The map needs only the model package: the BPE merges rank the tokens, no language split."""
    assert embeddings.embeddings_main(args(tmp_path, corpus=None)) == 0
    check_png(tmp_path / "map.png")
    report = json.loads((tmp_path / "map.json").read_text(encoding="utf-8"))
    assert report["corpus"] is None and "BPE merge order" in report["ranking"]
    assert report["language_rule"].startswith("unknown")
    assert len(report["tokens"]) == 12
    assert {t["language"] for t in report["tokens"]} == {None}
    assert all("count" not in t and len(t["neighbours"]) == 5 for t in report["tokens"])
    _, tokenizer = embeddings.embedding_matrix(TINY_MODEL)
    assert all(tokenizer.token_to_id(t["token"]) is not None for t in report["tokens"])
    # the pool is the whole vocabulary (specials and bytes aside), not just the mapped tokens
    assert report["neighbour_pool"].startswith("the 74 tokens of the vocabulary")


def test_the_map_command_runs_from_an_install_with_no_corpus(explain_extra, tmp_path, monkeypatch):
    """`traductor embeddings --out map.png` in a folder with no data/: the newcomer's trip."""
    from traductor.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["embeddings", "--model", str(TINY_MODEL), "--out", "map.png", "--top", "12"]) == 0
    check_png(tmp_path / "map.png")
    assert json.loads((tmp_path / "map.json").read_text(encoding="utf-8"))["corpus"] is None


def test_a_bad_corpus_path_is_one_clear_error_line(tmp_path, monkeypatch, capsys):
    from traductor.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["embeddings", "--model", str(TINY_MODEL), "--out", "map.png", "--corpus", "nope.tsv"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "traductor: error: --corpus nope.tsv: no such file\n"
    assert not (tmp_path / "map.png").exists()


def test_bpe_estimate_takes_away_what_later_merges_absorb():
    """Merge n counts about 1/n pairs; "ab" keeps what its merge counted less what "abc" took."""
    model = {
        "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "x": 5},
        "merges": ["a b", "ab c"],
    }
    estimates = embeddings._bpe_estimates(model, 6)
    assert estimates.tolist() == [0.0, 0.0, 0.0, 0.5, 0.5, 0.0]  # characters: unranked


def test_unigram_sides_follow_the_tokenizer_that_scores_a_piece_higher():
    """Two segmenters of one vocabulary (a converted OPUS-MT package): each token's language is the
    side whose Unigram gives it the higher probability; 0.0 marks a piece a side cannot produce."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models

    pieces = ["<pad>", "</s>", "<unk>", "\u2581casa", "\u2581house", "\u2581sol", "\u2581a"]
    src_scores = [0.0, 0.0, 0.0, -1.0, 0.0, -2.0, -3.0]
    tgt_scores = [0.0, 0.0, 0.0, 0.0, -1.5, 0.0, -1.0]
    source, target = (
        Tokenizer(models.Unigram(list(zip(pieces, scores)), 2, False))
        for scores in (src_scores, tgt_scores)
    )
    space = embeddings.Space(np.eye(7, dtype=np.float32), source, "test", target)
    specials = SimpleNamespace(pad_id=0, bos_id=0, eos_id=1, unk_id=2)
    cfg = SimpleNamespace(special_tokens=specials, language_tags={})
    kind, items = embeddings.package_items(space, space, cfg)
    assert kind == "Unigram"
    assert [(it.token, it.side) for it in items] == [
        ("\u2581casa", 0),
        ("\u2581a", 1),
        ("\u2581house", 1),
        ("\u2581sol", 0),
    ]


def test_a_tokenizer_without_a_frequency_order_asks_for_a_corpus():
    from tokenizers import Tokenizer, models

    tokenizer = Tokenizer(models.WordLevel({"<unk>": 0, "casa": 1}, unk_token="<unk>"))
    with pytest.raises(InputError, match=r"WordLevel model.*pass --corpus FILE"):
        embeddings._tokenizer_estimates(tokenizer, 2, "source")


def test_a_corpus_line_without_a_tab(explain_extra, tmp_path):
    (tmp_path / "corpus.tsv").write_text("casa perro\tsol\nsolo una columna\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 2: no TAB"):
        embeddings.embeddings_main(args(tmp_path))


def test_a_missing_extra_names_the_install_command(tmp_path, monkeypatch):
    write_corpus(tmp_path / "corpus.tsv")
    monkeypatch.setitem(
        sys.modules, "sklearn.manifold", None
    )  # import fails as if scikit-learn were absent
    with pytest.raises(
        InputError, match=r"scikit-learn is missing.*pip install 'traductor\[explain\]'"
    ):
        embeddings.embeddings_main(args(tmp_path))


def test_importable_without_the_extra_and_not_loaded_by_the_runtime():
    code = (
        "import sys\n"
        "for m in ('sklearn', 'matplotlib', 'onnx'): sys.modules[m] = None\n"
        "import traductor.runtime, traductor.runtime.translator, traductor.runtime.cli\n"
        "assert 'traductor.runtime.embeddings' not in sys.modules\n"
        "import traductor.runtime.embeddings\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_decoder_with_its_own_vocabulary_keeps_two_spaces(explain_extra, tmp_path):
    """A converted OPUS-MT package with separate vocabularies: the target tokens' vectors come from
    the decoder's own matrix, and neighbours never cross from one matrix to the other."""
    import onnx
    from onnx import numpy_helper

    pkg = tmp_path / "separate"
    shutil.copytree(TINY_MODEL, pkg)
    for name in ("encoder.int8.onnx", "decoder.int8.onnx"):
        (pkg / name).unlink()
    decoder = onnx.load(str(pkg / "decoder.onnx"))
    shared = next(t for t in decoder.graph.initializer if t.name == "embed.weight")
    own = (
        np.random.default_rng(0)
        .standard_normal(numpy_helper.to_array(shared).shape)
        .astype(np.float32)
    )
    decoder.graph.initializer.append(numpy_helper.from_array(own, "decoder_embed.weight"))
    gather = next(
        n for n in decoder.graph.node if n.op_type == "Gather" and n.input[0] == "embed.weight"
    )
    gather.input[0] = "decoder_embed.weight"
    onnx.save(decoder, str(pkg / "decoder.onnx"))
    config = json.loads((pkg / "config.json").read_text())
    config["dims"]["target_vocab_size"] = config["dims"]["vocab_size"]
    (pkg / "config.json").write_text(json.dumps(config))
    write_corpus(tmp_path / "corpus.tsv")

    assert embeddings.embeddings_main(args(tmp_path, model=str(pkg), top=15, neighbours=3)) == 0
    check_png(tmp_path / "map.png")
    report = json.loads((tmp_path / "map.json").read_text(encoding="utf-8"))
    assert report["shared_embeddings"] is False
    assert report["embedding"] == [
        "encoder.onnx:model.embed.weight",
        "decoder.onnx:decoder_embed.weight",
    ]
    side = {t["token"]: t["language"] for t in report["tokens"]}
    for t in report["tokens"]:
        assert {side[n["token"]] for n in t["neighbours"]} == {t["language"]}
    vectors = {t["label"]: t for t in report["tokens"] if t["language"] == "en"}
    word = next(iter(vectors))
    unit = own / np.linalg.norm(own, axis=1, keepdims=True)
    _, tokenizer = embeddings.embedding_matrix(TINY_MODEL)
    i = tokenizer.token_to_id("\u2581" + word)
    j = tokenizer.token_to_id(vectors[word]["neighbours"][0]["token"])
    assert vectors[word]["neighbours"][0]["cosine"] == pytest.approx(
        float(unit[i] @ unit[j]), abs=1e-4
    )

    # without a corpus each matrix's tokens take its side
    assert embeddings.embeddings_main(args(tmp_path, model=str(pkg), corpus=None, top=20)) == 0
    report = json.loads((tmp_path / "map.json").read_text(encoding="utf-8"))
    assert report["language_rule"] == "the side of the embedding matrix it belongs to"
    assert {t["language"] for t in report["tokens"]} == {"es", "en"}


@pytest.mark.parametrize(
    "graph",
    ["encoder.onnx", "decoder.onnx", "encoder.int8.onnx", "decoder.int8.onnx", "align.int8.onnx"],
)
def test_the_runtime_reads_float_initializers_as_onnx_does(graph):
    """runtime/package.py reads initializers without the onnx package; compare with onnx itself."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from traductor.runtime.package import graph_contents, tensor_array

    path = TINY_MODEL / graph
    model = onnx.load(str(path))
    _, inits = graph_contents(path.read_bytes())
    checked = 0
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            want = numpy_helper.to_array(t).astype(np.float32)
            assert np.array_equal(tensor_array(inits[t.name], t.name, TINY_MODEL), want), t.name
            checked += 1
    assert checked > 0
