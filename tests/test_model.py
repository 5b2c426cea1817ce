"""The Transformer: incremental decoding, causality, padding."""

import torch

from traductor.training.model import ModelConfig, Transformer

from .conftest import tiny_config


def _model(seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(tiny_config(**kw)).eval()


def test_cached_decode_matches_full_decode():
    for pre_norm in (False, True):
        model = _model(pre_norm=pre_norm)
        src = torch.randint(4, 64, (3, 9))
        mask = torch.ones_like(src, dtype=torch.bool)
        tgt = torch.randint(4, 64, (3, 7))
        with torch.no_grad():
            memory = model.encode(src, mask)
            full, _ = model.decode(tgt, memory, mask)
            cache, steps = None, []
            for t in range(tgt.shape[1]):
                logits, cache = model.decode(tgt[:, t : t + 1], memory, mask, cache)
                steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
        assert cache.length == 7 and cache.self_kv[0][0].shape == (3, 4, 7, 8)


def test_future_tokens_do_not_change_earlier_logits():
    model = _model()
    src = torch.randint(4, 64, (2, 6))
    mask = torch.ones_like(src, dtype=torch.bool)
    a = torch.randint(4, 64, (2, 8))
    b = a.clone()
    b[:, 5:] = torch.randint(4, 64, (2, 3))
    with torch.no_grad():
        la = model(src, mask, a)
        lb = model(src, mask, b)
    torch.testing.assert_close(la[:, :5], lb[:, :5], atol=1e-5, rtol=0)
    assert not torch.allclose(la[:, 5:], lb[:, 5:])


def test_source_padding_does_not_change_results():
    model = _model()
    src = torch.randint(4, 64, (1, 5))
    padded = torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], 1)
    tgt = torch.randint(4, 64, (1, 6))
    with torch.no_grad():
        plain = model(src, src != 0, tgt)
        with_pad = model(padded, padded != 0, tgt)
    torch.testing.assert_close(plain, with_pad, atol=1e-5, rtol=0)


def test_config_rejects_bad_values():
    import pytest

    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(vocab_size=10, dropout=1.5)
