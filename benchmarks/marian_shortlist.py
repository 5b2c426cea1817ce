"""OPUS-MT-sized Marian with and without a vocabulary shortlist: traductor's per-sentence shortlist
against CTranslate2's vocabulary map (vmap), same random weights, same table, one interleaved run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/marian_shortlist.py \
        --out benchmarks/results/marian-engines-shortlist --repeats 3
    # options: --sentences 64 --b1-sentences 24 --work /tmp/marian-bench --per-token 100
    #          --frequent 100 --corpus data/bible/train.tsv --engines ... --rebuild
    #          --workloads "greedy b1,greedy b16,beam4 b32" (any "greedy bN" / "beamK bN")
    # other modes: --combine DIR DIR (pool runs), --profile (one decoder step, ORT's profiler),
    #              --time-parts (encoder / decoder steps / cache reorder, cProfile), --render

Builds on marian_engines.py (its model, its conversions in --work, its children and timing loop;
read its docstring): the same random-weight Marian (d512, 6+6, vocabulary 58,101), the same
sources, workloads (greedy b1, greedy b16, beam 4 b32), 32 tokens per sentence, one thread.

The table
---------
Random weights come with no corpus, so the table is built from a real one, in the shape of
Marian's and Bergamot's lists: for each source token the `--per-token` (100) target tokens most
often in translations of sentences holding it, plus the `--frequent` (100) most frequent target
tokens, the end token and `<unk>` (CTranslate2 always adds `<unk>`, so both engines get the same
fixed tokens). Ranked by p(t | s) over sentence pairs (cooccurrence_table: what `traductor
shortlist` built at e069ecf, counted here so this table stays put while the package builder's
ranking changes) over the Spanish-English Bible pairs of --corpus:
  - source side: the model's own MarianTokenizer, so the ids are those the benchmark feeds;
  - target side: the English side cut into SentencePiece-like pieces (`▁word`, punctuation apart),
    each distinct piece given a fixed id of the 58,101 (seeded permutation; not `<pad>`, `</s>`,
    `<unk>`). The random model's own English SentencePiece model has 180 pieces, which would make
    every list nearly the whole of it; real OPUS-MT targets are word-like pieces of a 58k
    vocabulary, with a Zipfian spread, which these are.
So lists overlap as real ones do (a batch's union is what the product pays for). The table goes
  - into copies of traductor's fp32 and int8 packages (shortlist.npz, config.json `shortlist`,
    the decoders' candidate inputs by export.shortlist.add_candidate_head, the manifest): the
    format of docs/format.md "Vocabulary shortlist (format 8)". Not through `traductor shortlist`:
    its gate (98% of test sentences identical with and without the list) cannot pass on random
    weights, whose choices among 58,100 tokens are arbitrary; speed is what is measured here.
  - into vmap.txt in CTranslate2's converted directories (`<piece>\\t<piece> <piece> ...` per
    source piece, and one line with an empty key for the fixed tokens: what
    `ct2-transformers-converter --vocab_mapping` copies there), used with
    `translate_batch(..., use_vmap=True)`.
Both engines then read the same candidate lists. The difference: traductor restricts each
sentence to its own candidates (the step scores the batch's union, then each row its own list,
so a batch translates exactly as its sentences alone); CTranslate2 restricts every sentence to the
union of the batch's lists (rounded up to a multiple of 8), so a sentence's translation depends on
its neighbours. The report checks both: every token traductor generates is in its own sentence's
list, every token CTranslate2-vmap generates is in its batch's union, and counts the sentences
CTranslate2 gave a token outside their own list.

Engines: ct2-int8, ct2-int8-vmap, ct2-fp32, ct2-fp32-vmap, traductor-int8,
traductor-int8-shortlist, traductor-fp32, traductor-fp32-shortlist (traductor-int8: the ungated
int8 copy, see marian_engines.py). Writes results.md and results.json to --out.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import marian_engines as me
import numpy as np
from marian_model import VOCAB_SIZE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENGINES = [
    "ct2-int8",
    "ct2-int8-vmap",
    "ct2-fp32",
    "ct2-fp32-vmap",
    "traductor-int8",
    "traductor-int8-shortlist",
    "traductor-fp32",
    "traductor-fp32-shortlist",
]
SEED = 0
# (workload, engine, other engine): the target for tokens/s of engine / other (issue 32,
# item 4). fp32: at least CTranslate2 float32, like for like (list against map, none against none).
TARGETS = {
    **{(w, "traductor-int8-shortlist", "ct2-int8-vmap"): 1.15 for w in ("greedy b16", "beam4 b32")},
    **{(w, "traductor-int8-shortlist", "ct2-int8"): 1.3 for w in ("greedy b16", "beam4 b32")},
    ("greedy b1", "traductor-int8-shortlist", "ct2-int8"): 2.0,
    **{
        (w, a, b): 1.0
        for w in me.WORKLOADS
        for a, b in (
            ("traductor-fp32-shortlist", "ct2-fp32-vmap"),
            ("traductor-fp32", "ct2-fp32"),
            ("traductor-fp32-shortlist", "ct2-fp32"),
        )
    },
}
RATIOS = [
    ("traductor-int8-shortlist", "ct2-int8-vmap"),
    ("traductor-int8-shortlist", "ct2-int8"),
    ("traductor-int8", "ct2-int8"),
    ("traductor-fp32-shortlist", "ct2-fp32-vmap"),
    ("traductor-fp32-shortlist", "ct2-fp32"),
    ("traductor-fp32", "ct2-fp32"),
    ("traductor-int8-shortlist", "traductor-int8"),
    ("ct2-int8-vmap", "ct2-int8"),
    ("traductor-fp32-shortlist", "traductor-fp32"),
    ("ct2-fp32-vmap", "ct2-fp32"),
]


# -- the table -------------------------------------------------------------------------------------


def target_pieces(text: str) -> list[str]:
    """English text -> SentencePiece-like pieces: `▁word` after a space, punctuation on its own."""
    out = []
    for m in re.finditer(r"\w+|[^\w\s]", text):
        spaced = m.start() == 0 or text[m.start() - 1].isspace()
        out.append(("\u2581" if spaced else "") + m.group())
    return out


def build_table(model_dir: Path, corpus: Path, per_token: int, frequent: int):
    """-> (the Shortlist, facts about it). Source ids by MarianTokenizer, target pieces by
    target_pieces, each distinct piece a fixed id (see the module docstring)."""
    from transformers import MarianTokenizer

    from traductor.training.data import read_tsv

    tok = MarianTokenizer.from_pretrained(str(model_dir))
    pairs, _ = read_tsv(corpus)
    src = [tok(p.source).input_ids for p in pairs]
    pieces = [target_pieces(p.target) for p in pairs]
    counts = Counter(x for s in pieces for x in s)
    eos, unk, pad = tok.eos_token_id, tok.unk_token_id, tok.pad_token_id
    free = np.array([i for i in range(VOCAB_SIZE) if i not in (eos, unk, pad)])
    ids = np.random.default_rng(SEED).permutation(free)
    piece_id = {p: int(ids[r]) for r, (p, _) in enumerate(counts.most_common())}
    tgt = [[piece_id[x] for x in s] + [eos] for s in pieces]
    table = cooccurrence_table(src, tgt, per_token, frequent, always=(eos, unk), never=(pad,))
    sizes = np.diff(table.offsets)
    facts = {
        "corpus": str(corpus.relative_to(REPO) if corpus.is_relative_to(REPO) else corpus),
        "pairs": len(pairs),
        "distinct_target_pieces": len(counts),
        "per_token": per_token,
        "frequent_asked": frequent,
        "frequent": int(table.frequent.size),
        "source_tokens_with_a_list": int((sizes > 0).sum()),
        "mean_list_of_listed_source_tokens": float(sizes[sizes > 0].mean()),
        "entries": int(table.targets.size),
    }
    return table, facts


def cached_table(args, model_dir: Path):
    """build_table's result, kept in --work (shortlist-table.npz, its facts beside it) for the
    same corpus and sizes."""
    from traductor.runtime.shortlist import Shortlist

    key = f"{Path(args.corpus).resolve()} per_token={args.per_token} frequent={args.frequent} v2"
    path, info = Path(args.work) / "shortlist-table.npz", Path(args.work) / "shortlist-table.json"
    if not args.rebuild and info.is_file() and json.loads(info.read_text())["key"] == key:
        return Shortlist.load(path), json.loads(info.read_text())
    table, facts = build_table(model_dir, Path(args.corpus), args.per_token, args.frequent)
    facts["key"] = key
    table.save(path)
    info.write_text(json.dumps(facts))
    return table, facts


def cooccurrence_table(src, tgt, per_token: int, frequent: int, always, never):
    """p(t | s) over sentence pairs, the `per_token` best per source token (ties to the lower id),
    after the `frequent` most frequent targets (and `always`), which every sentence gets. What
    export.shortlist.build_table built at e069ecf; counted here so that the benchmark's table does
    not move when the package builder's ranking does."""
    from traductor.runtime.shortlist import Shortlist

    counts = np.bincount(np.concatenate([np.asarray(t) for t in tgt]), minlength=VOCAB_SIZE)
    counts[list(never)] = -1
    top = np.argsort(-counts, kind="stable")[:frequent]
    common = np.union1d(top[counts[top] > 0], list(always)).astype(np.int64)
    banned = np.zeros(VOCAB_SIZE, dtype=bool)
    banned[common] = True
    banned[list(never)] = True
    keys = []
    for s, t in zip(src, tgt):  # one key per (source token, target token) of a sentence pair
        s, t = np.unique(s), np.unique(t)
        t = t[~banned[t]]
        keys.append((s[:, None] * VOCAB_SIZE + t[None, :]).ravel())
    keys, pairs = np.unique(np.concatenate(keys), return_counts=True)
    src_of, tgt_of = keys // VOCAB_SIZE, keys % VOCAB_SIZE
    order = np.lexsort((tgt_of, -pairs, src_of))  # by source, most pairs first
    src_of, tgt_of = src_of[order], tgt_of[order]
    starts = np.searchsorted(src_of, np.arange(VOCAB_SIZE + 1))
    lists = [np.sort(tgt_of[lo : min(hi, lo + per_token)]) for lo, hi in zip(starts, starts[1:])]
    offsets = np.concatenate([[0], np.cumsum([x.size for x in lists])])
    return Shortlist(offsets, np.concatenate(lists), common)


def list_sizes(table, src: list[list[int]], batches: dict[str, int]) -> dict:
    """Mean candidates per sentence, and of the union over each workload's batches."""
    own = [table.sentence(s).size for s in src]
    out = {"sentence mean": float(np.mean(own)), "sentence max": int(np.max(own))}
    order = sorted(src, key=len)
    for size in batches.values():
        unions = [
            np.unique(np.concatenate([table.sentence(s) for s in order[i : i + size]])).size
            for i in range(0, len(order), size)
        ]
        out[f"union of {size} (mean)"] = float(np.mean(unions))
    return out


# -- the engines' files ----------------------------------------------------------------------------


def shortlist_package(pkg: Path, out: Path, table, facts: dict) -> Path:
    """A copy of the traductor package at pkg with the table: shortlist.npz, every decoder's
    candidate inputs, config.json `shortlist` (format 8), the manifest."""
    from traductor.export.shortlist import install_table

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(pkg, out)
    install_table(
        out,
        table,
        facts["per_token"],
        facts["frequent_asked"],
        f"{facts['corpus']} (benchmark table, gate not run: random weights)",
    )
    return out


def write_vmap(ct2_dir: Path, table, pieces: list[str]) -> Path:
    """vmap.txt in a CTranslate2 model directory: one line per source piece with a list, and the
    fixed tokens under the empty key. Pieces never hold spaces or tabs (SentencePiece writes ▁)."""
    name = next(
        n for n in ("target_vocabulary.json", "shared_vocabulary.json") if (ct2_dir / n).is_file()
    )
    vocab = set(json.loads((ct2_dir / name).read_text(encoding="utf-8")))
    lines = ["\t" + " ".join(pieces[t] for t in table.frequent)]
    for s in range(table.offsets.size - 1):
        targets = table.targets[table.offsets[s] : table.offsets[s + 1]]
        if targets.size:
            lines.append(pieces[s] + "\t" + " ".join(pieces[t] for t in targets))
    used = {p for line in lines for p in line.replace("\t", " ").split()}
    missing = used - vocab
    if missing:  # CTranslate2 would map them to <unk> silently
        raise ValueError(f"vmap pieces not in CTranslate2's vocabulary: {sorted(missing)[:5]}")
    path = ct2_dir / "vmap.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def traductor_packages(args, paths: dict, notes: dict) -> None:
    """traductor's fp32 package and the ungated int8 copy (marian_engines.py's), reused from
    --work when there (whichever way they were made: its log is in --work), else made as
    marian_engines.py makes them."""
    work = Path(args.work)
    pkg, ungated = work / "traductor-pkg", work / "traductor-pkg-int8-ungated"
    if args.rebuild or not (pkg / "config.json").is_file():
        base = argparse.Namespace(**{**vars(args), "engines": ["traductor-fp32", "traductor-int8"]})
        me._prepare_traductor(base, work, Path(paths["model_dir"]), paths, notes)
        return
    notes["traductor_package_from"] = f"reused {pkg}"
    paths["package"] = str(pkg)
    if not (ungated / "BUILT").is_file():
        dev = me._write_dev_sources(work / "dev.es.txt", args.sentences)
        me._call(
            sys.executable,
            ["--add-int8", str(pkg), str(ungated), str(dev)],  # runs marian_engines.py
            "",
            me._env_for("pytorch"),
            3600,
        )
    notes["traductor_int8_ungated"] = json.loads((ungated / "BUILT").read_text())
    paths["package_int8"] = str(ungated)


def prepare(args, notes: dict) -> tuple[dict, object, dict]:
    """marian_engines' model and conversions, then the table, the shortlist packages and the
    vmaps. Returns the paths (marian_engines' plus `packages` per traductor engine)."""
    base = argparse.Namespace(**{**vars(args), "engines": ["ct2-fp32", "ct2-int8"]})
    paths = me.prepare(base, notes)
    traductor_packages(args, paths, notes)
    table, facts = cached_table(args, Path(paths["model_dir"]))
    notes["table"] = facts
    packages = {
        "traductor-fp32": paths["package"],
        "traductor-int8": paths["package_int8"],
    }
    work = Path(args.work)
    for engine, pkg in list(packages.items()):
        if pkg is None:
            continue
        out = work / f"{Path(pkg).name}-shortlist"
        # The head's kind too: packages made before the outside-mass estimate, or before the
        # per-batch state inputs, are made again.
        from traductor.export.shortlist import HEAD_REVISION, OUTSIDE_MATRIX
        from traductor.runtime.package import IONames

        head = f"{OUTSIDE_MATRIX} {IONames.state_input(0)} {HEAD_REVISION}"
        built = f"{facts['key']} {head} {(Path(pkg) / 'manifest.json').read_text()}"
        if args.rebuild or not (out / "BUILT").is_file() or (out / "BUILT").read_text() != built:
            t0 = time.time()
            shortlist_package(Path(pkg), out, table, facts)
            (out / "BUILT").write_text(built)
            print(f"{out}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        packages[f"{engine}-shortlist"] = str(out)
    paths["packages"] = packages
    for name in ("ct2-int8", "ct2-fp32"):
        if name in paths["ct2_dir"]:
            from transformers import MarianTokenizer

            tok = MarianTokenizer.from_pretrained(paths["model_dir"])
            pieces = tok.convert_ids_to_tokens(list(range(VOCAB_SIZE)))
            write_vmap(Path(paths["ct2_dir"][name]), table, pieces)
            paths["ct2_dir"][f"{name}-vmap"] = paths["ct2_dir"][name]
    return paths, table, facts


# -- checks on what was generated ------------------------------------------------------------------


def token_checks(table, workloads: dict, hyps: dict) -> dict:
    """For each (workload, engine) timed: are all tokens in the sentence's own list (traductor with
    its shortlist) or in the batch's union (CTranslate2 with the map); how many sentences got a
    token outside their own list."""
    out = {}
    for (wname, engine), got in hyps.items():
        if not engine.endswith(("-shortlist", "-vmap")):
            continue
        beam, size, wsrc = workloads[wname]
        order = sorted(wsrc, key=len)  # hyps are in batch order (marian_engines._child)
        own = [set(table.sentence(s).tolist()) for s in order]
        union = [set().union(*own[i : i + size]) for i in range(0, len(order), size)]
        out[f"{wname}: {engine}"] = {
            "sentences": len(got),
            "outside_own": sum(any(t not in o for t in h) for h, o in zip(got, own)),
            "outside_union": sum(
                any(t not in union[i // size] for t in h) for i, h in enumerate(got)
            ),
        }
    return out


def parse_workloads(text: str) -> dict[str, tuple[int, int]]:
    """'greedy b16,beam4 b32' -> {name: (beam, batch)}."""
    out = {}
    for name in (x.strip() for x in text.split(",") if x.strip()):
        m = re.fullmatch(r"(greedy|beam(\d+)) b(\d+)", name)
        if not m:
            raise SystemExit(f"--workloads: {name!r} is not 'greedy bN' or 'beamK bN'")
        out[name] = (int(m.group(2) or 1), int(m.group(3)))
    return out


def agreement(hyps: dict, pairs: list[tuple[str, str]]) -> dict:
    """Share of sentences with identical tokens, per workload, for pairs of engines."""
    out = {}
    for wname in dict.fromkeys(w for w, _ in hyps):  # the workloads in the order they ran
        for a, b in pairs:
            x, y = hyps.get((wname, a)), hyps.get((wname, b))
            if x and y:
                out[f"{wname}: {a} = {b}"] = sum(p == q for p, q in zip(x, y)) / len(x)
    return out


# -- one decoder step, profiled --------------------------------------------------------------------


def profile_step(
    package: Path, variant: str, table, src: list[list[int]], rows: int, beam: int, n: int = 30
):
    """`n` steps of `package`'s `variant` decoder, one thread, past 16 tokens, source 48, candidates
    of the first rows // beam benchmark sources: with the shortlist and with empty candidates (the
    whole vocabulary), timed, then under ONNX Runtime's profiler -> {"union", "width", "whole" |
    "shortlist": {"ms_per_step", "ops": [(op type, kernel ms per step), ...]}}."""
    import onnxruntime as ort

    from traductor.runtime.package import read_config
    from traductor.runtime.shortlist import Candidates

    batch = rows // beam
    c = table.candidates(src[:batch], 2 * beam + 1)
    path = str(package / read_config(package).variants[variant].decoder)
    dims = {"rows": rows, "batch": batch, "past_len": 16, "src_len": 48}

    def session(profile: bool):
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.enable_profiling = profile
        so.profile_file_prefix = f"/tmp/marian-shortlist-step-{rows}"
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    timed, feeds = session(False), {}
    for i in timed.get_inputs():
        shape = [dims.get(d, d) for d in i.shape]
        if i.name in ("input_ids", "attention_mask"):
            feeds[i.name] = np.ones(shape, dtype=np.int64)
        elif i.type == "tensor(float)" and not i.name.startswith("candidate"):
            feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds["position"] = np.array([16], dtype=np.int64)
    feeds["top_k"] = np.array([2 * beam if beam > 1 else 1], dtype=np.int64)
    out = {"union": int(c.ids.size), "width": int(c.rows.shape[1])}
    for name, cand in (("whole", Candidates.empty(batch)), ("shortlist", c)):
        f = {**feeds, "candidate_ids": cand.ids, "candidate_rows": cand.rows}
        f["candidate_bias"] = cand.bias
        for _ in range(5):
            timed.run(None, f)
        t0 = time.perf_counter()
        for _ in range(n):
            timed.run(None, f)
        ms = 1000 * (time.perf_counter() - t0) / n
        profiled = session(True)
        for _ in range(n):
            profiled.run(None, f)
        trace = Path(profiled.end_profiling())
        per_op: Counter = Counter()
        for e in json.loads(trace.read_text()):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_op[e["args"]["op_name"]] += e["dur"] / n / 1000
        trace.unlink()
        out[name] = {"ms_per_step": ms, "ops": [(k, round(v, 3)) for k, v in per_op.most_common()]}
    return out


# -- report ----------------------------------------------------------------------------------------


def _ratio_lines(get: dict, engines: list[str], workloads: list[str]) -> tuple[list[str], dict]:
    lines = [
        "| ratio | " + " | ".join(workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]
    ratios = {}
    for a, b in RATIOS:
        if a not in engines or b not in engines:
            continue
        cells = []
        for w in workloads:
            x = get.get((w, a), {}).get("tokens_per_s")
            y = get.get((w, b), {}).get("tokens_per_s")
            if not (x and y):
                cells.append("-")
                continue
            ratios[f"{w}: {a} / {b}"] = x / y
            target = TARGETS.get((w, a, b))
            mark = f" (>= {target:g}: {'met' if x / y >= target else 'MISSED'})" if target else ""
            cells.append(f"{x / y:.2f}x{mark}")
        lines.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return lines, ratios


def engine_table(get: dict, engines: list[str], workloads: list[str]) -> list[str]:
    """tokens/s per engine and workload, and whether every sentence got exactly 32 tokens."""
    lines = [
        "| engine | " + " | ".join(f"{w} tok/s" for w in workloads) + " | tokens per sentence |",
        "|---|" + "---:|" * len(workloads) + "---|",
    ]
    for e in engines:
        rows = [get[(w, e)] for w in workloads]
        cells = [f"{r['tokens_per_s']:,.1f}" if "tokens_per_s" in r else "failed" for r in rows]
        exact = all(r.get("all_exactly_32") for r in rows)
        counts = " / ".join(
            "-"
            if "tokens_per_sentence" not in r
            else "-".join(map(str, sorted(set(r["tokens_per_sentence"]))))
            for r in rows
        )
        label = f"{e} (ungated int8, see below)" if e.startswith("traductor-int8") else e
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {counts}"
            + (" (all exactly 32)" if exact else "")
            + " |"
        )
    return lines


def report(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    workloads = list(res["workloads"])
    get = {(r["workload"], r["engine"]): r for r in res["rows"]}
    ratio_lines, res["ratios"] = _ratio_lines(get, res["engines"], workloads)
    t = res["notes"]["table"]
    sizes = res["list_sizes"]
    lines = [
        "# Marian (OPUS-MT size): traductor's shortlist against CTranslate2's vocabulary map",
        "",
        *me._setup_lines(res),
        "",
        f"Table: k={t['per_token']} target tokens per source token + {t['frequent']} fixed "
        f"(the 100 most frequent, `</s>`, `<unk>`), p(t|s) over the {t['pairs']:,} sentence "
        f"pairs of {t['corpus']} (source: the model's MarianTokenizer; target: "
        f"{t['distinct_target_pieces']:,} word-like English pieces on fixed random ids of the "
        "58,101); "
        f"{t['source_tokens_with_a_list']:,} source tokens have a list "
        f"({t['mean_list_of_listed_source_tokens']:.1f} entries on average). Candidates on the "
        "benchmark sources: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in sizes.items())
        + " (of 58,101). The same lists in traductor's packages (shortlist.npz) and in "
        "CTranslate2's vmap.txt. traductor: each sentence its own list; CTranslate2: the union "
        "of the batch's lists.",
        "",
        *engine_table(get, res["engines"], workloads),
        "",
        "Ratios (tokens/s of the first / the second; targets from issue 32 item 4):",
        "",
        *ratio_lines,
        "",
        "Generated tokens against the lists (first repeat):",
        "",
        *[
            f"- {k}: {v['outside_own']} of {v['sentences']} sentences with a token outside "
            f"their own list, {v['outside_union']} outside their batch's union"
            for k, v in res["token_checks"].items()
        ],
        "",
        "Identical translations (share of sentences):",
        "",
        *[f"- {k}: {100 * v:.0f}%" for k, v in res["agreement"].items()],
    ]
    if res["errors"]:
        lines += ["", "Failures:", ""] + [f"- {e}: {m[-400:]}" for e, m in res["errors"].items()]
    lines += me._traductor_notes(res["notes"])
    lines += ["", "Versions:", ""]
    lines += [
        f"- {k}: " + (", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else v)
        for k, v in res["versions"].items()
    ]
    lines += ["", f"Total wall time {res['wall_minutes']:.0f} min. Command:", "", "```"]
    lines += [res["command"], "```", ""]
    text = "\n".join(lines)
    (out / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    (out / "results.md").write_text(text)
    print(text)


def time_parts(package: Path, src: list[list[int]]) -> dict:
    """Where the end-to-end time of traductor int8 goes (cProfile around translate_ids, one
    thread, greedy b16 and beam 4 b32 over the sources): ONNX Runtime's encoder and decoder runs,
    the beam's cache reorder (numpy take), the rest (search, candidates, Python) -> seconds."""
    import cProfile
    import pstats

    from traductor.runtime import TranslationOptions, Translator

    tr = Translator(package, variant="int8", intra_threads=1)
    src = sorted(src, key=len)
    out = {}
    for name, (beam, size) in (("greedy b16", (1, 16)), ("beam4 b32", (4, 32))):
        opts = TranslationOptions(beam_size=beam, batch_size=10_000, max_length=me.NEW_TOKENS)
        tr.translate_ids(src[:size], opts)  # warm-up
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for i in range(0, len(src), size):
            tr.translate_ids(src[i : i + size], opts)
        prof.disable()
        total = time.perf_counter() - t0
        stats = pstats.Stats(prof).stats  # (file, line, function) -> (cc, nc, tottime, cumtime, _)

        def tot(part: str, stats=stats) -> float:  # built-ins: ("~", 0, "<built-in method ...>")
            return sum(v[2] for k, v in stats.items() if part in k[2])

        encoder = sum(v[3] for k, v in stats.items() if k[2] == "encode" and "onnx_model" in k[0])
        parts = {
            "total": total,
            "encoder": encoder,
            "decoder steps": tot(".run>") + tot(".run_with_iobinding>") - encoder,
            "cache reorder (take)": tot("'take' of 'numpy.ndarray'"),
        }
        parts["rest"] = total - sum(v for k, v in parts.items() if k != "total")
        out[name] = {k: round(v, 3) for k, v in parts.items()}
    return out


def combine(dirs: list[Path]) -> str:
    """Several runs' results.json -> a markdown table: per engine and workload the median tokens/s
    over every repeat of every run, and for each ratio of RATIOS the ratio of those medians and
    the range of the per-repeat ratios (the two engines of a repeat ran minutes apart at most)."""
    runs = [json.loads((d / "results.json").read_text()) for d in dirs]
    tps: dict[tuple, list[float]] = {}
    for run in runs:
        for row in run["rows"]:
            key = (row["workload"], row["engine"])
            tps.setdefault(key, []).extend(row["generated_tokens"] / x for x in row["seconds"])
    workloads, engines = list(runs[0]["workloads"]), runs[0]["engines"]
    med = {k: float(np.median(v)) for k, v in tps.items()}
    n = min(len(v) for v in tps.values())
    lines = [
        f"Pooled over {', '.join(str(d) for d in dirs)} ({n} repeats per engine and workload):",
        "",
        "| engine | " + " | ".join(f"{w} tok/s" for w in workloads) + " |",
        "|---|" + "---:|" * len(workloads),
        *[
            f"| {e} | " + " | ".join(f"{med[(w, e)]:,.1f}" for w in workloads) + " |"
            for e in engines
        ],
        "",
        "| ratio of medians (per-repeat range) | " + " | ".join(workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]
    for a, b in RATIOS:
        cells = []
        for w in workloads:
            each = [x / y for x, y in zip(tps[(w, a)], tps[(w, b)])]
            target = TARGETS.get((w, a, b))
            mark = ""
            if target:
                mark = (
                    f", >= {target:g}: {'met' if med[(w, a)] / med[(w, b)] >= target else 'MISSED'}"
                )
            cells.append(
                f"{med[(w, a)] / med[(w, b)]:.2f}x ({min(each):.2f}-{max(each):.2f}{mark})"
            )
        lines.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- main ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--out",
        default=str(HERE / "results" / "marian-engines-shortlist"),
        help="directory for results.md and results.json",
    )
    p.add_argument("--work", default="/tmp/marian-bench", help="models and converted engines")
    p.add_argument("--sentences", type=int, default=64, help="sources for greedy b16, beam4 b32")
    p.add_argument("--b1-sentences", type=int, default=24, help="sources for greedy b1")
    p.add_argument(
        "--workloads",
        default=",".join(me.WORKLOADS),
        help="comma-separated, each 'greedy bN' or 'beamK bN' (N sentences a batch); batch 1 "
        "runs on --b1-sentences, the others on --sentences",
    )
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median reported)")
    p.add_argument("--engines", default=",".join(ENGINES), help="engines, comma-separated")
    p.add_argument("--per-token", type=int, default=100, help="target tokens per source token")
    p.add_argument("--frequent", type=int, default=100, help="most frequent target tokens")
    p.add_argument(
        "--corpus", default=str(REPO / "data" / "bible" / "train.tsv"), help="pairs for the table"
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the model, reconvert all")
    p.add_argument("--timeout", type=float, default=1800, help="seconds for one measurement")
    p.add_argument("--prepare-only", action="store_true", help="build everything, time nothing")
    p.add_argument(
        "--render", action="store_true", help="write results.md again from --out's results.json"
    )
    p.add_argument(
        "--time-parts",
        action="store_true",
        help="instead of the run, time the parts of traductor int8's end-to-end time (encoder, "
        "decoder steps, cache reorder, rest), with and without the shortlist; prints JSON",
    )
    p.add_argument(
        "--combine",
        nargs="+",
        metavar="DIR",
        help="print the medians over these runs' repeats (result folders) and exit",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead of the run, profile one decoder step (int8 and fp32; rows 1, 16, and beam 4 "
        "x 32) with and without the shortlist; prints JSON",
    )
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engines: {sorted(unknown)}")
    if args.combine:
        print(combine([Path(d) for d in args.combine]), end="")
        return 0
    if args.render:
        report(json.loads((Path(args.out) / "results.json").read_text()), Path(args.out))
        return 0
    started = time.time()
    notes: dict = {}
    paths, table, _ = prepare(args, notes)
    if args.prepare_only:
        print(json.dumps(notes["table"], indent=1))
        return 0
    src, pad, pieces = me._sources(paths, args.sentences, notes)
    if args.time_parts:
        got = {
            e: time_parts(Path(paths["packages"][e]), src)
            for e in ("traductor-int8-shortlist", "traductor-int8")
        }
        print(json.dumps(got, indent=1))
        return 0
    if args.profile:
        got = {
            f"{v} rows {r} (beam {b})": profile_step(
                Path(paths["packages"][f"traductor-{v}-shortlist"]), v, table, src, r, b
            )
            for v in ("int8", "fp32")
            for r, b in ((1, 1), (16, 1), (128, 4))
        }
        print(json.dumps(got, indent=1))
        return 0
    errors = {
        e: "not set up (see notes)"
        for e in args.engines
        if (e.startswith("ct2") and e not in paths["ct2_dir"])
        or (e.startswith("traductor") and not paths["packages"].get(e))
    }
    workloads = {
        name: (beam, size, src[: args.b1_sentences] if size == 1 else src)
        for name, (beam, size) in parse_workloads(args.workloads).items()
    }
    common = {
        "pad": pad,
        "model_dir": paths["model_dir"],
        "optimum_dir": None,
        "package": paths["package"],
        "package_int8": paths["package_int8"],
        "packages": paths["packages"],
        "ct2_dir": paths["ct2_dir"],
    }
    times, lengths, hyps = me._run_interleaved(args, workloads, common, pieces, errors, None)
    res = {
        "engines": list(args.engines),
        "workloads": {
            k: {"beam": b, "batch": s, "sentences": len(w)} for k, (b, s, w) in workloads.items()
        },
        "new_tokens": me.NEW_TOKENS,
        "repeats": args.repeats,
        "model": {"vocab_size": VOCAB_SIZE, **me.DIMS, "eos_bias": me.EOS_BIAS},
        "paths": paths,
        "cpu": me._cpu(),
        "versions": me._versions([], Path("/nonexistent")),
        "errors": errors,
        "notes": notes,
        "list_sizes": list_sizes(table, src, {"16": 16, "32": 32}),
        "token_checks": token_checks(table, workloads, hyps),
        "agreement": agreement(
            hyps,
            [
                ("traductor-fp32-shortlist", "ct2-fp32-vmap"),
                ("traductor-fp32", "ct2-fp32"),
                ("traductor-int8-shortlist", "ct2-int8-vmap"),
                ("traductor-int8", "ct2-int8"),
                ("traductor-fp32-shortlist", "traductor-fp32"),
                ("ct2-fp32-vmap", "ct2-fp32"),
            ],
        ),
        "rows": me._rows(workloads, list(args.engines), times, lengths, hyps, errors),
        "wall_minutes": (time.time() - started) / 60,
        "command": "$ flock /tmp/bench.lock .venv/bin/python benchmarks/marian_shortlist.py "
        + shlex.join(sys.argv[1:]),
    }
    res["versions"]["traductor git"] = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report(res, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
