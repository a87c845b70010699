"""Input limits: the one home of every range a user-supplied number must lie in.

The CLI, the web API and the library's own value objects check against these, so every
entry point accepts and refuses the same inputs with the same words.
"""

from __future__ import annotations

__all__ = [
    "MAX_BUDGET_USD_PER_HOUR",
    "MAX_CONCURRENCY",
    "MAX_CONFIG_CHARS",
    "MAX_E2E_S",
    "MAX_GPU_CHOICES",
    "MAX_INPUT_TOKENS",
    "MAX_NUM_REQUESTS",
    "MAX_OUTPUT_TOKENS",
    "MAX_PARALLEL",
    "MAX_PRICE_FILE_BYTES",
    "MAX_RATE_PER_S",
    "MAX_SPECULATIVE_TOKENS",
    "MAX_TPOT_S",
    "MAX_TTFT_S",
    "check_range",
]

#: Tokens per request. 10M covers the longest published context (Llama 4 Scout).
MAX_INPUT_TOKENS = 10_000_000
MAX_OUTPUT_TOKENS = 1_000_000
#: Requests per second and concurrent users a plan or prediction may ask for.
MAX_RATE_PER_S = 100_000.0
MAX_CONCURRENCY = 1_000_000
#: Requests one simulation or benchmark run may contain.
MAX_NUM_REQUESTS = 1_000_000
#: p90 latency targets.
MAX_TTFT_S = 3600.0
MAX_TPOT_S = 60.0
MAX_E2E_S = 86_400.0
MAX_BUDGET_USD_PER_HOUR = 10_000_000.0
#: Draft tokens one speculative step proposes (vLLM and SGLang use 1-8 in practice).
MAX_SPECULATIVE_TOKENS = 16
#: TP, PP, DP and GPU counts.
MAX_PARALLEL = 1024
#: GPUs, precisions or KV dtypes listed in one question.
MAX_GPU_CHOICES = 64
#: A pasted config.json.
MAX_CONFIG_CHARS = 256 * 1024
#: A price file (YAML).
MAX_PRICE_FILE_BYTES = 1024 * 1024


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise InputError unless ``low <= value <= high`` and the value is finite."""
    from inferplan.errors import InputError

    if not (low <= value <= high):  # NaN fails both comparisons
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
