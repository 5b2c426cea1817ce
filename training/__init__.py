"""Training in PyTorch: corpus, tokenizer, model, training loop, evaluation.

Needs the `train` extra.
"""
