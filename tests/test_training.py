"""Training: learning a task, exact resume, checkpoints, multi-process training, evaluation."""

import json
import os
import subprocess
import sys

import pytest
import torch

from traductor.training.checkpoint import load_checkpoint, load_model
from traductor.training.search import beam_search, greedy
from traductor.training.train import TrainConfig, Trainer, lr_at

from .conftest import tiny_config


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        vocab_size=400,
        max_tokens=600,
        lr=3e-3,
        warmup=50,
        steps=20,
        eval_every=10,
        eval_sentences=10,
        seed=3,
        device="cpu",
        progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_schedule_warms_up_linearly_then_decays_as_inverse_sqrt():
    cfg = TrainConfig(data="", out="", lr=1e-3, warmup=100)
    assert lr_at(50, cfg) == pytest.approx(5e-4)
    assert lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(400, cfg) == pytest.approx(5e-4)


@pytest.mark.slow
def test_reverse_task_is_learned_within_a_few_hundred_steps(reverse_corpus, tmp_path):
    torch.set_num_threads(2)
    cfg = _cfg(
        reverse_corpus, tmp_path, steps=600, eval_every=300, eval_sentences=50, lr=5e-3, warmup=100
    )
    trainer = Trainer(cfg, tiny_config())
    result = trainer.run()
    model = trainer.model.eval()
    src = trainer.dev_data.src[:50]
    hyps = [h.tokens for h in greedy(model, src)]
    exact = sum(h == t for h, t in zip(hyps, trainer.dev_data.tgt[:50])) / 50
    assert exact >= 0.8, f"only {exact:.0%} of reversals exactly right"
    assert result["dev_bleu"] > 70
    # Beam search finds the same (or an at least as likely) answer.
    beams = beam_search(model, src[:10], beam_size=4)
    assert sum(b[0].tokens == t for b, t in zip(beams, trainer.dev_data.tgt[:10])) >= 8


def test_resume_continues_exactly_where_it_stopped(reverse_corpus, tmp_path):
    torch.set_num_threads(1)
    straight = Trainer(
        _cfg(reverse_corpus, tmp_path / "a", steps=16, eval_every=8), tiny_config(dropout=0.1)
    )
    straight.run()

    first = Trainer(
        _cfg(reverse_corpus, tmp_path / "b", steps=8, eval_every=8), tiny_config(dropout=0.1)
    )
    first.run()
    second = Trainer(
        _cfg(reverse_corpus, tmp_path / "b", steps=16, eval_every=8),
        None,
        resume=str(tmp_path / "b" / "last.pt"),
    )
    assert second.step == 8
    second.run()

    a = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])
    b = json.loads((tmp_path / "b" / "log.jsonl").read_text().splitlines()[-1])
    assert a["step"] == b["step"] == 16
    assert a["train_loss"] == b["train_loss"] and a["dev_loss"] == b["dev_loss"]
    for (name, p), q in zip(
        straight.model.state_dict().items(), second.model.state_dict().values()
    ):
        assert torch.equal(p, q), name


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_model(reverse_corpus, tmp_path):
    trainer = Trainer(_cfg(reverse_corpus, tmp_path, steps=4, eval_every=4), tiny_config())
    trainer.run()
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    assert raw["step"] == 4 and raw["model_config"]["d_model"] == 32 and raw["optimizer"]
    model, tok, _ = load_model(tmp_path / "best.pt")
    assert model.cfg == trainer.model_cfg and tok.get_vocab_size() == trainer.model_cfg.vocab_size
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "tokenizer.json").is_file()


def test_weights_only_checkpoint_resumes_without_optimizer_state(reverse_corpus, tmp_path):
    Trainer(
        _cfg(reverse_corpus, tmp_path, steps=4, eval_every=4, save_optimizer=False), tiny_config()
    ).run()
    assert load_checkpoint(tmp_path / "last.pt")["optimizer"] is None
    resumed = Trainer(
        _cfg(reverse_corpus, tmp_path, steps=6, eval_every=2),
        None,
        resume=str(tmp_path / "last.pt"),
    )
    assert resumed.step == 4
    resumed.run()
    assert resumed.step == 6


def test_corrupt_checkpoint_raises_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    from traductor.training.data import DataError

    with pytest.raises(DataError, match="not a readable traductor checkpoint"):
        load_checkpoint(bad)


@pytest.mark.slow
def test_torchrun_trains_with_two_cpu_processes(reverse_corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "traductor",
        "train",
        "--data",
        str(reverse_corpus),
        "--out",
        str(out),
        "--vocab-size",
        "400",
        "--d-model",
        "32",
        "--heads",
        "4",
        "--d-ff",
        "64",
        "--encoder-layers",
        "2",
        "--decoder-layers",
        "2",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--eval-sentences",
        "5",
        "--max-tokens",
        "400",
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]  # written once, by rank 0 only
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 6
    assert "2 process(es)" in proc.stderr


def test_cli_evaluate_prints_bleu_and_writes_hypotheses(reverse_corpus, tmp_path):
    Trainer(_cfg(reverse_corpus, tmp_path, steps=4, eval_every=4), tiny_config()).run()
    out = tmp_path / "hyps.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "traductor",
            "evaluate",
            str(tmp_path / "best.pt"),
            "--data",
            str(reverse_corpus / "test.tsv"),
            "--beam",
            "2",
            "--limit",
            "7",
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["sentences"] == 7 and 0 <= result["bleu"] <= 100
    assert len(out.read_text().splitlines()) == 7


def test_cli_reports_missing_data_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "traductor",
            "train",
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "corpus file not found" in proc.stderr and "Traceback" not in proc.stderr
