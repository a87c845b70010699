"""Memory: the formulas (weights, KV cache, activations, runtime overhead) and the answers
built on them (does it fit, how many sequences, how long a context, how many GPUs)."""
