"""The one `traductor` command. Subcommands import their stage lazily, so `translate` never loads
torch and a missing extra is reported as one clear line."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

from traductor import __version__
from traductor.runtime.package import TraductorError

# Which extra installs a missing import (a command that needs another extra says so in _load).
EXTRA_OF = {
    "torch": "train",
    "sacrebleu": "train",
    "tqdm": "train",
    "matplotlib": "train",
    "pysword": "train",
    "onnx": "export",
    "onnxscript": "export",
    "transformers": "convert",
    "sentencepiece": "convert",
    "safetensors": "convert",
    "huggingface_hub": "convert",
    "starlette": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "py3langid": "serve",
    "sklearn": "explain",
    "sentencex": "documents",
    "lxml": "documents",
    "pyarrow": "dataset",
    "ray": "ray",
}


COMMAND_EXTRA = {
    "traductor.export.marian": "convert",
    "traductor.runtime.explain": "explain",
    "traductor.runtime.embeddings": "explain",
    "traductor.runtime.documents.cli": "documents",
    "traductor.runtime.dataset.cli": "dataset",
}


class UserError(TraductorError):
    """Raised for mistakes the user can fix; printed as one line, exit code 2."""


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark execution providers, variants and settings (no torch)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    p.add_argument(
        "--providers",
        default="cpu",
        help="comma-separated providers; missing ones are reported as skipped",
    )
    p.add_argument(
        "--variants", default="", help="comma-separated variants (default: all in the package)"
    )
    p.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes")
    p.add_argument("--beam-sizes", default="1,4", help="comma-separated beam sizes")
    p.add_argument(
        "--threads",
        default="auto,1,2",
        help="comma-separated intra-op thread counts; auto = the default (threads by batch size)",
    )
    p.add_argument(
        "--input",
        help="sentences, one per line (default: benchmarks/test-books.es.txt, the held-out test "
        "books)",
    )
    p.add_argument("--limit", type=int, default=100, help="use the first N sentences (0 = all)")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed repeats per setting (median reported)"
    )
    p.add_argument(
        "--out",
        default="bench-results",
        help="directory for results.json, results.md and the chart",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="merge the results.json of these bench directories into --out",
    )
    p.set_defaults(run="traductor.runtime.bench:bench_main")


def _add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare-data",
        help="extract a parallel corpus",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("corpus", choices=["bible"], help="which corpus to extract")
    p.add_argument("--out", required=True, help="directory for train/dev/test .tsv and .ids")
    p.add_argument(
        "--sword-dir", default="/usr/share/sword", help="where the SWORD modules are installed"
    )
    p.set_defaults(run="traductor.training.data:main")


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a Transformer translator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, help="directory with train.tsv and dev.tsv (source<TAB>target)"
    )
    p.add_argument("--out", required=True, help="run directory for checkpoints, logs and plots")
    p.add_argument(
        "--resume", help="checkpoint to continue from (its model and tokenizer are used)"
    )
    p.add_argument("--force", action="store_true", help="start a new run even if --out holds one")
    g = p.add_argument_group("model (new runs)")
    g.add_argument("--vocab-size", type=int, default=8000, help="joint BPE vocabulary size")
    g.add_argument("--d-model", type=int, default=256, help="model width")
    g.add_argument("--heads", type=int, default=4, help="attention heads")
    g.add_argument("--d-ff", type=int, default=1024, help="feed-forward width")
    g.add_argument("--encoder-layers", type=int, default=4, help="encoder layers")
    g.add_argument("--decoder-layers", type=int, default=4, help="decoder layers")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout")
    g.add_argument("--pre-norm", action="store_true", help="pre-LN instead of the paper's post-LN")
    g.add_argument("--max-len", type=int, default=256, help="longest sequence in subwords")
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--max-tokens", type=int, default=4096, help="padded tokens per batch and process"
    )
    g.add_argument(
        "--accum", type=int, default=1, help="batches per update (gradient accumulation)"
    )
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--warmup", type=int, default=500, help="warm-up steps")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing")
    g.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0 = off)")
    g.add_argument("--steps", type=int, default=2000, help="stop after this many updates")
    g.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="also stop after this many minutes (0 = no limit)",
    )
    g.add_argument(
        "--eval-every", type=int, default=200, help="steps between dev evaluations/checkpoints"
    )
    g.add_argument("--eval-sentences", type=int, default=100, help="dev sentences for dev BLEU")
    g.add_argument("--seed", type=int, default=1, help="random seed")
    g.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train"
    )
    g.add_argument(
        "--train-limit", type=int, default=0, help="use only the first N training pairs (0 = all)"
    )
    g.add_argument(
        "--no-optimizer-state",
        dest="save_optimizer",
        action="store_false",
        help="leave Adam state out of checkpoints (smaller)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(run="traductor.training.train:main")


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="BLEU/chrF of a checkpoint or model package on a TSV test set",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="a .pt checkpoint (PyTorch) or a model directory (through the ONNX runtime)",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="model directory only: int8 or fp32 (default: int8 if present)",
    )
    p.add_argument(
        "--data", required=True, help="source<TAB>reference file, e.g. data/bible/test.tsv"
    )
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    p.add_argument("--limit", type=int, default=0, help="only the first N sentences (0 = all)")
    p.add_argument("--output", help="file for the hypotheses (default: next to the checkpoint)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    p.set_defaults(run="traductor.training.evaluate:main")


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="checkpoint -> verified ONNX model package",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="a .pt checkpoint from `traductor train`, or compact .npz weights (--save-weights)",
    )
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write an int8 variant (per-row activation scales, 7-bit weights; "
        "checked against fp32)",
    )
    p.add_argument(
        "--dev",
        help="source<TAB>target file for the greedy checks (default: the training run's dev.tsv)",
    )
    p.add_argument(
        "--dev-sentences", type=int, default=100, help="dev sentences used by the greedy checks"
    )
    p.add_argument(
        "--source-lang", default="es", help="source language code written to config.json"
    )
    p.add_argument(
        "--target-lang", default="en", help="target language code written to config.json"
    )
    p.add_argument("--beam", type=int, default=4, help="default beam size written to config.json")
    p.add_argument(
        "--test-data",
        help="source<TAB>reference file: measure BLEU/chrF of every variant into config.json "
        "and the card",
    )
    p.add_argument("--card-notes", help="markdown file appended to the generated MODEL_CARD.md")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--accept-mismatch",
        action="store_true",
        help="write the package even if it fails verification (loud warning)",
    )
    p.add_argument(
        "--ort",
        action="store_true",
        help="also write each variant in ORT format (ONNX Runtime Mobile, minimal builds) and "
        "the required_operators.config a reduced build needs",
    )
    p.add_argument(
        "--save-weights",
        metavar="NPZ",
        help="also write the checkpoint's weights in float16 (.npz), from which --rebuild-fp32 "
        "restores fp32",
    )
    p.add_argument(
        "--rebuild-fp32",
        action="store_true",
        help="only add the fp32 graphs, rebuilt from CHECKPOINT, to the existing package --out "
        "(parity-checked)",
    )
    p.set_defaults(run="traductor.export.export:main")


def _add_shortlist(sub) -> None:
    p = sub.add_parser(
        "shortlist",
        help="add a vocabulary shortlist, built from a parallel corpus, to a model package (gated)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="the model package directory, changed in place")
    p.add_argument(
        "--corpus", required=True, help="source<TAB>target pairs the table is built from"
    )
    p.add_argument(
        "--test",
        help="held-out source<TAB>reference pairs for the gate (without it, no gate runs)",
    )
    p.add_argument("--per-token", type=int, default=100, help="target tokens per source token")
    p.add_argument("--frequent", type=int, default=100, help="most frequent target tokens")
    p.add_argument(
        "--method",
        choices=("alignment", "cooccurrence"),
        default="alignment",
        help="rank a source token's targets by IBM Model 1 p(t|s) (alignment) or by sentence "
        "co-occurrence",
    )
    p.add_argument(
        "--self-translations",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also count the package's own greedy translations of the corpus' sources, what the "
        "gate compares against (costs one translation of the corpus)",
    )
    p.set_defaults(run="traductor.export.shortlist:main")


def _add_convert(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert a model from another toolkit into a verified package"
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    q = kinds.add_parser(
        "marian",
        help="a Hugging Face MarianMT / OPUS-MT checkpoint (directory or hub id)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    q.add_argument(
        "src",
        help="a directory as transformers saves it, or a hub id such as "
        "Helsinki-NLP/opus-mt-en-es (downloads)",
    )
    q.add_argument("--out", required=True, help="model directory to write")
    q.add_argument(
        "--int8", action="store_true", help="also write an int8 variant (checked against fp32)"
    )
    q.add_argument("--force", action="store_true", help="replace --out if it exists")
    q.add_argument(
        "--dev",
        help="source sentences for the checks, one per line or source<TAB>target "
        "(default: built-in samples)",
    )
    q.add_argument("--dev-sentences", type=int, default=24, help="dev sentences used by the checks")
    q.add_argument(
        "--source-lang",
        help="source language code (default: from tokenizer_config.json or the model name)",
    )
    q.add_argument(
        "--target-lang",
        help="target language code (default: from tokenizer_config.json or the model name)",
    )
    q.add_argument("--beam", type=int, default=4, help="default beam size written to config.json")
    q.add_argument(
        "--test-data",
        help="source<TAB>reference file: measure BLEU/chrF into config.json and the card",
    )
    q.add_argument("--card-notes", help="markdown file appended to the generated MODEL_CARD.md")
    q.add_argument(
        "--accept-mismatch",
        action="store_true",
        help="write the package even if it fails verification (loud warning)",
    )
    q.add_argument(
        "--ort",
        action="store_true",
        help="also write each variant in ORT format (ONNX Runtime Mobile, minimal builds) and "
        "the required_operators.config a reduced build needs",
    )
    q.set_defaults(run="traductor.export.marian:main")


def _add_explain(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="translation + attention heatmap + alignment JSON for one text (explain extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("text", help="the text to translate and explain")
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    p.add_argument(
        "--out", required=True, help="directory for translation.txt, attention.png and explain.json"
    )
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the model's)")
    p.add_argument("--variant", default=None, help="model variant (default: int8 where present)")
    p.add_argument(
        "--target-language",
        "--to",
        dest="target_language",
        help="for models with several target languages",
    )
    p.set_defaults(run="traductor.runtime.explain:explain_main")
    p = sub.add_parser(
        "embeddings",
        help="t-SNE map of the embeddings + nearest neighbours (explain extra)",
        description="Map the most frequent tokens of a model's embedding matrix with t-SNE (PNG) "
        "and list their nearest neighbours (JSON). The model package alone is enough: without "
        "--corpus its tokenizer ranks the tokens (a BPE vocabulary by its merge order, which the "
        "trainer writes in order of pair frequency; a Unigram one by its piece probabilities), "
        "and the map has one colour unless the package has a tokenizer or a matrix per language. "
        "With --corpus the tokens are counted on it and coloured by the side they occur on more.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    p.add_argument("--out", required=True, help="the map, a .png file")
    p.add_argument("--json", help="nearest neighbours as JSON (default: next to --out, .json)")
    p.add_argument(
        "--corpus",
        help="source<TAB>target file to count tokens on and split them by language; "
        "without it the model's tokenizer ranks them",
    )
    p.add_argument(
        "--top", type=int, default=300, help="how many of the most frequent tokens to map"
    )
    p.add_argument("--neighbours", type=int, default=8, help="nearest neighbours listed per token")
    p.add_argument("--seed", type=int, default=0, help="t-SNE random state")
    p.set_defaults(run="traductor.runtime.embeddings:embeddings_main")


def _add_serve(sub) -> None:
    # Settings is the single source of the server's defaults (the module imports no starlette).
    from traductor.runtime.serve.settings import CONTINUOUS_SENTENCES, STATIC_SENTENCES, Settings

    p = sub.add_parser(
        "serve",
        help="LibreTranslate-compatible HTTP API (needs the serve extra)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model",
        action="append",
        help="model name or directory; repeat for several (default: the built-in es-en)",
    )
    p.add_argument("--host", default=Settings.host, help="address to listen on")
    p.add_argument("--port", type=int, default=Settings.port, help="port to listen on")
    p.add_argument(
        "--char-limit",
        type=int,
        default=Settings.char_limit,
        help="most characters per text (-1: no limit)",
    )
    p.add_argument(
        "--batch-limit",
        type=int,
        default=Settings.batch_limit,
        help="most texts per request (-1: no limit)",
    )
    p.add_argument(
        "--req-limit",
        type=int,
        default=Settings.req_limit,
        help="most requests per client per minute (-1: no limit)",
    )
    p.add_argument(
        "--alternatives-limit",
        type=int,
        default=Settings.alternatives_limit,
        help="most alternatives a request may ask for",
    )
    p.add_argument(
        "--api-keys", help="file of API keys, one per line: every request then needs one"
    )
    p.add_argument(
        "--trust-forwarded-for",
        action="store_true",
        help="behind a proxy: limit clients by X-Forwarded-For",
    )
    p.add_argument(
        "--web",
        help="folder of the in-browser page served at / (default: web/ of a source checkout, "
        "once set up; else the page shipped in the package, also at /page/)",
    )
    p.add_argument(
        "--file-limit-mb",
        type=float,
        default=Settings.file_limit_mb,
        help="largest upload /translate_file takes, in MiB (-1: no limit)",
    )
    p.add_argument(
        "--files-ttl",
        type=float,
        default=Settings.files_ttl,
        help="seconds a translated file waits for its download before it is removed",
    )
    p.add_argument(
        "--files-dir",
        default=Settings.files_dir,
        help="folder for translated files awaiting download (default: a temporary folder, "
        "removed when the server stops)",
    )
    p.add_argument(
        "--no-batching",
        action="store_true",
        help="translate each request alone, --workers of them at a time (for comparison)",
    )
    p.add_argument(
        "--continuous",
        action="store_true",
        help="beam search batches continuously: a request joins the running batch at its next "
        "step instead of waiting for it to finish (no faster on 2 cores; see the README)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=Settings.batch_wait_ms,
        help="how long a batch waits for more requests",
    )
    p.add_argument(
        "--max-batch-sentences",
        type=int,
        default=Settings.max_batch_sentences,
        help=f"most sentences decoded together (default {STATIC_SENTENCES}; with --continuous, "
        f"{CONTINUOUS_SENTENCES} running per worker)",
    )
    p.add_argument(
        "--variant", default=Settings.variant, help="model variant (default: int8 where present)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=Settings.threads,
        help="intra-op threads per package (1 measured best under load)",
    )
    p.add_argument(
        "--no-shortlist",
        action="store_true",
        help="score the whole vocabulary even where a package has a vocabulary shortlist",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=Settings.workers,
        help="batches decoded at once per package, each on --threads threads "
        "(2 where there are 2 cores or more)",
    )
    p.add_argument(
        "--beam",
        type=int,
        default=Settings.beam_size,
        help="beam size for every request (default: each package's; 1 = greedy, faster)",
    )
    p.add_argument(
        "--log-level",
        default=Settings.log_level,
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level",
    )
    p.set_defaults(run="traductor.runtime.serve:serve_main")


def _add_model_options(p) -> None:
    """The decoding and execution flags `translate` and `translate-file` share (after --model)."""
    p.add_argument(
        "--beam", type=int, default=None, help="beam size, 1 = greedy (default: the model's config)"
    )
    p.add_argument(
        "--max-length", type=int, default=None, help="most subwords per translated sentence"
    )
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together")
    p.add_argument(
        "--provider",
        default="cpu",
        help="execution provider(s), comma-separated: cpu, cuda, openvino, ...",
    )
    p.add_argument(
        "--fallback-cpu",
        action="store_true",
        help="use CPU (with a warning) if the asked provider is missing",
    )
    p.add_argument(
        "--variant", default=None, help="model variant: int8 or fp32 (default: int8 if present)"
    )
    p.add_argument(
        "--target-language",
        "--to",
        dest="target_language",
        help="for models with several target languages (see `traductor models`)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for everything (default: automatic: encoder on all cores, decoder "
        "on one thread below 24 running rows)",
    )
    p.add_argument(
        "--no-shortlist",
        action="store_true",
        help="score the whole vocabulary even where the package has a vocabulary shortlist",
    )


def _add_translate(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="translate text with a model package (no torch needed)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("text", nargs="*", help="text to translate; with none, reads stdin line by line")
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    p.add_argument("--input", help="file to translate, one text per line")
    p.add_argument("--output", help="file to write translations to (default: stdout)")
    _add_model_options(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line with scores, tokens and timings",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )
    p.set_defaults(run="traductor.runtime.cli:translate_main")


def _add_translate_file(sub) -> None:
    from traductor.runtime.documents.formats import supported

    p = sub.add_parser(
        "translate-file",
        help="translate a document and keep its format (documents extra)",
        description=f"Translate a document sentence by sentence; its structure, styles and "
        f"everything that is not text stay as they were. Formats: {supported()}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", help="the document to translate; its extension names the format")
    p.add_argument(
        "--output", help="file to write (default: NAME.<target language>.EXT beside the input)"
    )
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    _add_model_options(p)
    p.add_argument("--format", help="the input's format, overriding its extension (txt, docx, ...)")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.add_argument(
        "--glossary",
        metavar="FILE",
        help="terms to translate a set way: one 'source term<TAB>target term' per line",
    )
    p.add_argument(
        "--keep",
        action="append",
        metavar="TERM",
        help="a term to leave untranslated; repeatable; @FILE (or the path of an existing file) "
        "reads one term per line",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (there is none when stderr is not a terminal)",
    )
    p.set_defaults(run="traductor.runtime.documents.cli:translate_file_main")


def _add_translate_dataset(sub) -> None:
    p = sub.add_parser(
        "translate-dataset",
        help="translate a column of JSONL, CSV or Parquet files, locally or on Ray (dataset extra)",
        description="Translate one column of a dataset into DIR: every input column plus "
        "row_id, translation, score and error, in parts named by input file and row range. "
        "Rerunning the command after a crash skips the parts already written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", help="a JSONL, CSV or Parquet file, a directory of them, or a glob")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the parts")
    p.add_argument("--column", default="text", help="the input column to translate")
    p.add_argument(
        "--model",
        help="model name or directory (default: $TRADUCTOR_MODEL, else the built-in es-en)",
    )
    _add_model_options(p)
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process, all cores; ray: a Ray Data actor pool (ray extra)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local engine: worker processes, each with its own model on cores / workers threads "
        "(default: one per core; 1 = this process, --threads applies)",
    )
    p.add_argument(
        "--output-format", choices=["parquet", "jsonl"], default="parquet", help="format of parts"
    )
    p.add_argument(
        "--part-rows",
        type=int,
        default=1000,
        help="input rows per output part: the unit of work, retry and resume",
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=10_000,
        help="longer texts are not translated; their error says so",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the parts of a job with another model, options or inputs in DIR",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rows/s and time left on stderr (default: when stderr is a terminal)",
    )
    ray = p.add_argument_group("ray engine")
    ray.add_argument(
        "--address",
        help="join a running cluster: auto, HOST:PORT or ray://HOST:PORT (default: start a local "
        "Ray for the job)",
    )
    ray.add_argument(
        "--actors",
        type=int,
        default=None,
        help="most actors in the pool (default: the cluster's CPUs / --cpus-per-actor)",
    )
    ray.add_argument(
        "--min-actors",
        type=int,
        default=None,
        help="actors the pool starts with and keeps; fewer than --actors lets Ray Data scale the "
        "pool with the work (default: --actors, a fixed pool)",
    )
    ray.add_argument(
        "--cpus-per-actor",
        type=int,
        default=1,
        help="CPUs each actor reserves, and its ONNX Runtime intra-op threads",
    )
    ray.add_argument(
        "--ray-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)"
    )
    ray.add_argument(
        "--ship-model",
        action="store_true",
        help="upload the model package with the job (runtime_env working_dir) instead of "
        "reading --model's path on every node",
    )
    p.set_defaults(run="traductor.runtime.dataset.cli:translate_dataset_main")


def _add_models(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list, add or remove model packages (default: list)",
        description="Models are addressed by name (--model es-en) or by path. `traductor models` "
        "lists the built-in and user models with their variants, sizes and BLEU.",
    )
    p.set_defaults(run="traductor.runtime.cli:models_main", action="list", path=[])
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    q = acts.add_parser(
        "list", help="list installed models, or the packages in the given directories"
    )
    q.add_argument(
        "path",
        nargs="*",
        help="package directories, or folders of packages (default: every installed model)",
    )
    q = acts.add_parser("add", help="verify a package and copy it into the user's model directory")
    q.add_argument(
        "src", help="model package directory (from `traductor export` or `traductor convert`)"
    )
    q.add_argument("--name", help="name to install it under (default: the directory's name)")
    q.add_argument("--force", action="store_true", help="replace a user model of the same name")
    q = acts.add_parser("remove", help="delete a user model")
    q.add_argument("name", help="the model's name, as `traductor models` shows it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traductor", description="Offline Transformer translation toolkit."
    )
    parser.add_argument("--version", action="version", version=f"traductor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_translate,
        _add_translate_file,
        _add_translate_dataset,
        _add_models,
        _add_bench,
        _add_prepare,
        _add_train,
        _add_evaluate,
        _add_export,
        _add_shortlist,
        _add_convert,
        _add_serve,
        _add_explain,
    ):
        add(sub)
    return parser


# The base install: without one of these, no command runs (a platform without a wheel for it, such
# as 32-bit ARM for onnxruntime, or a broken install).
BASE_DEPENDENCIES = ("onnxruntime", "numpy", "tokenizers")


def _load(target: str):
    module_name, func = target.split(":")
    try:
        return getattr(importlib.import_module(module_name), func)
    except ImportError as e:
        error = _missing(e, module_name)
        if error is None:
            raise
        raise error from e


def _missing(e: ImportError, module_name: str = "") -> UserError | None:
    """The one line for an import that failed for want of a package, or None for another failure."""
    missing = (e.name or "").split(".")[0]
    if missing in BASE_DEPENDENCIES:
        return UserError(
            f"{missing} could not be imported ({e}); traductor needs it on every platform: "
            f"pip install {missing} (on {platform.machine()} with Python "
            f"{platform.python_version()}: if pip finds no wheel, see docs/edge.md for the "
            "platforms that have one)"
        )
    if isinstance(e, ModuleNotFoundError) and missing in EXTRA_OF:
        # The extra that pulls the missing package in for this command: convert needs torch
        # too, and the pictures take matplotlib from the explain extra (no torch).
        extra = COMMAND_EXTRA.get(module_name, EXTRA_OF[missing])
        return UserError(
            f"this command needs {missing}, which is not installed: "
            f"pip install 'traductor[{extra}]'"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ImportError as e:  # some subcommands' defaults come from the runtime
        if (error := _missing(e)) is None or os.environ.get("TRADUCTOR_DEBUG"):
            raise
        print(f"traductor: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return _load(args.run)(args) or 0
    except KeyboardInterrupt:
        print("traductor: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _is_user_error(e) and not os.environ.get("TRADUCTOR_DEBUG"):
            print(f"traductor: error: {e}", file=sys.stderr)
            return 2
        raise


def _is_user_error(e: Exception) -> bool:
    """The TraductorError family (bad input, options, files, models, data, failed export checks) and
    file-system errors. Set TRADUCTOR_DEBUG=1 to see the traceback instead."""
    return isinstance(e, (TraductorError, OSError))
