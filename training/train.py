"""`traductor train`: label-smoothed, warmed-up Adam training with token batches, resumable
checkpoints, dev BLEU, and multi-process training under torchrun (DistributedDataParallel)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .batching import Encoded, collate, encode_pairs, make_batches
from .checkpoint import load_checkpoint, save_checkpoint
from .data import DataError, read_tsv
from .model import ModelConfig, Transformer
from .search import greedy
from .tokenizer import special_ids, train_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    data: str  # directory with train.tsv and dev.tsv (source TAB target)
    out: str  # run directory: checkpoints, tokenizer.json, log.jsonl, curves.png
    vocab_size: int = 8000  # joint BPE vocabulary (new runs only)
    max_tokens: int = 4096  # padded tokens per batch and process
    accum: int = 1  # batches per optimizer update
    lr: float = 1e-3  # peak learning rate, reached at the end of warm-up
    warmup: int = 500  # linear warm-up steps, then inverse square root decay (section 5.3)
    label_smoothing: float = 0.1
    clip: float = 1.0  # max gradient norm; 0 disables clipping
    steps: int = 2000  # optimizer updates to stop at
    minutes: float = 0.0  # also stop after this much wall time; 0 = no time limit
    eval_every: int = 200  # steps between dev evaluations and checkpoints
    eval_sentences: int = 100  # dev sentences translated (greedy) for dev BLEU
    seed: int = 1
    device: str = "auto"  # auto, cpu, cuda
    train_limit: int = 0  # use only the first N training pairs (0 = all); for tests and demos
    save_optimizer: bool = True  # False keeps checkpoints small (weights + schedule only)
    progress: bool = True


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The paper's schedule, written with its peak: linear warm-up, then decay with 1/sqrt(step).

    lr = d^-0.5 * min(step^-0.5, step * warmup^-1.5) is this with lr_peak = (d * warmup)^-0.5.
    """
    step = max(step, 1)
    return cfg.lr * min(step / cfg.warmup, math.sqrt(cfg.warmup / step))


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig | None, resume: str | None = None):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.device = _pick_device(cfg.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        state = load_checkpoint(resume) if resume else None
        self.tok = self._tokenizer(state)
        if state:
            model_cfg = ModelConfig(**state["model_config"])
        elif model_cfg is None:
            raise ValueError("a new run needs a ModelConfig")
        ids = special_ids(self.tok)
        model_cfg = ModelConfig(
            **{**model_cfg.to_dict(), **ids, "vocab_size": self.tok.get_vocab_size()}
        )
        self.model_cfg = model_cfg
        torch.manual_seed(cfg.seed + self.rank)
        self.model = Transformer(model_cfg).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9
        )
        self.step, self.epoch, self.cursor, self.best_bleu = 0, 0, 0, -1.0
        if state:
            self._restore(state)
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.world > 1
            else self.model
        )
        self.train_data, self.dev_data, self.dev_pairs = self._load_data()

    # -- setup -------------------------------------------------------------------------------

    def _tokenizer(self, state):
        from tokenizers import Tokenizer

        if state:
            return Tokenizer.from_str(state["tokenizer"])
        path = self.out / "tokenizer.json"
        if self.rank == 0:
            pairs, _ = read_tsv(
                Path(self.cfg.data) / "train.tsv", limit=self.cfg.train_limit or None
            )
            tok = train_tokenizer(
                (t for p in pairs for t in (p.source, p.target)), self.cfg.vocab_size
            )
            self.out.mkdir(parents=True, exist_ok=True)
            tok.save(str(path))
        if self.world > 1:
            dist.barrier()
        return Tokenizer.from_file(str(path))

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.log_print(
                "checkpoint has no optimizer state (weights-only): Adam moments start from zero"
            )
        self.step, self.epoch, self.cursor = state["step"], state["epoch"], state["cursor"]
        self.best_bleu = state.get("best_bleu", -1.0)
        if "rng" in state and self.world == 1:
            torch.set_rng_state(state["rng"])
            if self.device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def _load_data(self) -> tuple[Encoded, Encoded, list]:
        data = Path(self.cfg.data)
        train_pairs, train_report = read_tsv(data / "train.tsv", limit=self.cfg.train_limit or None)
        dev_pairs, dev_report = read_tsv(data / "dev.tsv")
        eos, max_len = self.model_cfg.eos_id, self.model_cfg.max_len
        train, dev = (
            encode_pairs(self.tok, train_pairs, eos, max_len),
            encode_pairs(self.tok, dev_pairs, eos, max_len),
        )
        for report, enc in ((train_report, train), (dev_report, dev)):
            extra = f", {enc.dropped} longer than max_len={max_len} left out" if enc.dropped else ""
            self.log_print(f"{report}{extra}")
        return train, dev, dev_pairs

    # -- the loop ----------------------------------------------------------------------------

    def batches_per_step(self) -> int:
        return self.cfg.accum * self.world

    def next_update_batches(self) -> list[list[int]]:
        """The batches of this process for the next update; walks epochs deterministically."""
        need = self.batches_per_step()
        while True:
            order = make_batches(self.train_data, self.cfg.max_tokens, self.cfg.seed, self.epoch)
            if self.cursor + need <= len(order):
                group = order[self.cursor : self.cursor + need]
                self.cursor += need
                return group[self.rank :: self.world]
            self.epoch, self.cursor = self.epoch + 1, 0

    @torch.enable_grad()
    def train_step(self) -> tuple[float, int]:
        self.model.train()
        micro = self.next_update_batches()
        n_tokens = sum(len(self.train_data.tgt[i]) + 1 for b in micro for i in b)
        for g in self.optimizer.param_groups:
            g["lr"] = lr_at(self.step + 1, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for j, index in enumerate(micro):
            src, src_mask, tgt_in, tgt_out = (
                t.to(self.device)
                for t in collate(
                    self.train_data,
                    index,
                    self.model_cfg.pad_id,
                    self.model_cfg.bos_id,
                    self.model_cfg.eos_id,
                )
            )
            sync = j == len(micro) - 1 or self.world == 1
            ctx = self.ddp.no_sync() if not sync else nullcontext()
            with (
                ctx,
                torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
                ),
            ):
                logits = self.ddp(src, src_mask, tgt_in)
                loss = F.cross_entropy(
                    logits.float().flatten(0, 1),
                    tgt_out.flatten(),
                    ignore_index=self.model_cfg.pad_id,
                    label_smoothing=self.cfg.label_smoothing,
                    reduction="sum",
                )
                (loss / n_tokens).backward()
            total += loss.item()
        if self.cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        self.step += 1
        return total / n_tokens, n_tokens

    @torch.no_grad()
    def evaluate(self) -> dict:
        import sacrebleu

        self.model.eval()
        loss_sum, n = 0.0, 0
        order = make_batches(self.dev_data, self.cfg.max_tokens, 0, 0)
        for index in order:
            src, src_mask, tgt_in, tgt_out = (
                t.to(self.device)
                for t in collate(
                    self.dev_data,
                    index,
                    self.model_cfg.pad_id,
                    self.model_cfg.bos_id,
                    self.model_cfg.eos_id,
                )
            )
            logits = self.model(src, src_mask, tgt_in)
            loss_sum += F.cross_entropy(
                logits.float().flatten(0, 1),
                tgt_out.flatten(),
                ignore_index=self.model_cfg.pad_id,
                reduction="sum",
            ).item()
            n += int((tgt_out != self.model_cfg.pad_id).sum())
        k = min(self.cfg.eval_sentences, len(self.dev_data.src))
        hyps = []
        for start in range(0, k, 32):
            for h in greedy(self.model, self.dev_data.src[start : min(k, start + 32)]):
                hyps.append(self.tok.decode(h.tokens))
        refs = [self.tok.decode(t) for t in self.dev_data.tgt[:k]]
        return {
            "dev_loss": loss_sum / max(n, 1),
            "dev_bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "dev_chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            "dev_example": hyps[0] if hyps else "",
        }

    def run(self) -> dict:
        cfg = self.cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log_print(
            f"model: {n_params / 1e6:.1f}M parameters, {self.model_cfg}; "
            f"device {self.device}, {self.world} process(es)"
        )
        bar = _progress(cfg.progress and self.rank == 0, self.step, cfg.steps)
        start, window_tokens, window_start, losses = time.time(), 0, time.time(), []
        last_eval: dict = {}
        while self.step < cfg.steps:
            loss, n_tokens = self.train_step()
            losses.append(loss)
            window_tokens += n_tokens
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr_at(self.step, cfg):.2e}")
            out_of_time = cfg.minutes and (time.time() - start) / 60 >= cfg.minutes
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps or out_of_time:
                elapsed = time.time() - window_start
                record = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "train_loss": sum(losses) / len(losses),
                    "lr": lr_at(self.step, cfg),
                    "tgt_tokens_per_s": window_tokens * self.world / max(elapsed, 1e-9),
                    "elapsed_s": time.time() - start,
                }
                if self.rank == 0:
                    record.update(self.evaluate())
                    self._checkpoint(record)
                    bar.write(_fmt(record))
                if self.world > 1:
                    dist.barrier()
                last_eval, losses, window_tokens, window_start = record, [], 0, time.time()
            if out_of_time:
                self.log_print(f"stopping at step {self.step}: --minutes {cfg.minutes} reached")
                break
        bar.close()
        if self.rank == 0:
            plot_curves(self.out / "log.jsonl", self.out / "curves.png")
        return last_eval

    def _checkpoint(self, record: dict) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        improved = record["dev_bleu"] > self.best_bleu
        if improved:
            self.best_bleu = record["dev_bleu"]
        state = self.state_dict()
        save_checkpoint(state, self.out / "last.pt")
        if improved:
            save_checkpoint(state, self.out / "best.pt")

    def state_dict(self) -> dict:
        return {
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.cfg.save_optimizer else None,
            "step": self.step,
            "epoch": self.epoch,
            "cursor": self.cursor,
            "best_bleu": self.best_bleu,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "tokenizer": self.tok.to_str(),
        }

    def log_print(self, msg: str) -> None:
        if self.rank == 0:
            print(msg, file=sys.stderr, flush=True)


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DataError("--device cuda asked for, but torch sees no CUDA GPU")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def _progress(enabled: bool, initial: int, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="step",
        dynamic_ncols=True,
        file=sys.stderr,
    )


def _fmt(r: dict) -> str:
    return (
        f"step {r['step']:>6}  train {r['train_loss']:.3f}  dev {r['dev_loss']:.3f}  "
        f"BLEU {r['dev_bleu']:5.2f}  chrF {r['dev_chrf']:5.2f}  "
        f"{r['tgt_tokens_per_s']:,.0f} tgt tok/s  {r['elapsed_s'] / 60:.1f} min  "
        f"| {r['dev_example'][:70]}"
    )


def plot_curves(log: Path, png: Path) -> None:
    """Loss (train, dev) and dev BLEU against steps, from the JSONL log."""
    if not log.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["train_loss"] for r in rows], label="train loss (smoothed labels)")
    ax.plot(steps, [r["dev_loss"] for r in rows], label="dev loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per token")
    bleu = ax.twinx()
    bleu.plot(steps, [r["dev_bleu"] for r in rows], color="tab:green", marker=".", label="dev BLEU")
    bleu.set_ylabel("dev BLEU")
    fig.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def config_from_args(args) -> tuple[TrainConfig, ModelConfig]:
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    model_cfg = ModelConfig(
        vocab_size=args.vocab_size,
        d_model=args.d_model,
        n_heads=args.heads,
        d_ff=args.d_ff,
        n_encoder_layers=args.encoder_layers,
        n_decoder_layers=args.decoder_layers,
        dropout=args.dropout,
        pre_norm=args.pre_norm,
        max_len=args.max_len,
    )
    return cfg, model_cfg


def main(args) -> int:
    cfg, model_cfg = config_from_args(args)
    if not args.resume and (Path(cfg.out) / "last.pt").exists() and not args.force:
        raise DataError(
            f"{cfg.out} already holds a run; pass --resume {cfg.out}/last.pt to continue it "
            "or --force to start over"
        )
    trainer = Trainer(cfg, model_cfg, resume=args.resume)
    result = trainer.run()
    if trainer.world > 1:
        dist.destroy_process_group()
    if trainer.rank == 0 and result:
        print(json.dumps({k: v for k, v in result.items() if k != "dev_example"}))
    return 0
