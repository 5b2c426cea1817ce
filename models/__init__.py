"""Built-in model packages, one folder each (installed as `traductor.models`; runtime/models.py).

The wheel carries the default es-en package's int8 variant only. A source checkout also tracks the
es-en weights in fp16 (`es-en.weights.npz`), from which `make fp32` rebuilds the fp32 variant.
"""
