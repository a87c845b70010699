"""Input limits: the one home of every range a user-supplied number must lie in.

The CLI, the web API and the library's own value objects check against these, so every
entry point accepts and refuses the same inputs with the same words.
"""

from __future__ import annotations

import math

__all__ = [
    "CONFIG_FIELD_MAX",
    "MAX_BATCHED_TOKENS",
    "MAX_BUDGET_USD_PER_HOUR",
    "MAX_CONCURRENCY",
    "MAX_CONFIG_CHARS",
    "MAX_CONFIG_FILE_BYTES",
    "MAX_CONFIG_INT_DIGITS",
    "MAX_CONTEXT_TOKENS",
    "MAX_E2E_S",
    "MAX_EXPERTS",
    "MAX_GPU_CHOICES",
    "MAX_HEADS",
    "MAX_HEAD_DIM",
    "MAX_HIDDEN_SIZE",
    "MAX_INPUT_TOKENS",
    "MAX_INTERMEDIATE_SIZE",
    "MAX_JSON_DEPTH",
    "MAX_LAYERS",
    "MAX_MEMORY_BYTES",
    "MAX_NUM_REQUESTS",
    "MAX_NUM_SEQS",
    "MAX_OUTPUT_TOKENS",
    "MAX_PARALLEL",
    "MAX_PORT",
    "MAX_PRICE_FILE_BYTES",
    "MAX_QUEUED_PLANS",
    "MAX_RATE_PER_S",
    "MAX_REQUEST_BODY_BYTES",
    "MAX_RUNNING_PLANS",
    "MAX_SEED",
    "MAX_SPECULATIVE_TOKENS",
    "MAX_TPOT_S",
    "MAX_TTFT_S",
    "MAX_VOCAB_SIZE",
    "MAX_WAIT_S",
    "check_range",
    "describe_number",
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
#: One web request's body; plans the web server runs at once (each takes a core for up to a
#: few seconds) and may keep waiting before it answers 429.
MAX_REQUEST_BODY_BYTES = 512 * 1024
MAX_RUNNING_PLANS = 2
MAX_QUEUED_PLANS = 64
#: A config.json read from disk or the hub (published ones are a few KiB).
MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024
#: Nesting of a config.json (published ones nest three or four levels).
MAX_JSON_DEPTH = 32
#: Digits of one integer in a config file (int64 has 19).
MAX_CONFIG_INT_DIGITS = 19
#: Engine settings: tokens and sequences per step, memory sizes, how long to wait for a start.
MAX_BATCHED_TOKENS = 10_000_000
MAX_NUM_SEQS = 100_000
MAX_MEMORY_BYTES = 1e13
MAX_WAIT_S = 86_400.0
#: A TCP port.
MAX_PORT = 65_535
#: A random seed (numpy takes 32 bits).
MAX_SEED = 2**32 - 1

#: Sizes of a model's parts, far beyond every published model (largest today: hidden 16,384,
#: FFN 53,248, 126 layers, 232 heads, head dim 256, 384 experts, vocabulary 262,144,
#: context 10,485,760 tokens), so only a corrupt or hostile config is refused.
MAX_HIDDEN_SIZE = 2**18
MAX_INTERMEDIATE_SIZE = 2**21
MAX_LAYERS = 2048
MAX_HEADS = 16_384
MAX_HEAD_DIM = 4096
MAX_EXPERTS = 4096
MAX_VOCAB_SIZE = 2**22
MAX_CONTEXT_TOKENS = 2**30

#: The largest value of each integer field of a Hugging Face config.json (smallest: 0).
CONFIG_FIELD_MAX: dict[str, int] = {
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "kv_lora_rank", "q_lora_rank"), MAX_HIDDEN_SIZE),
    **dict.fromkeys(
        (
            "intermediate_size",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "ffn_hidden_size",
            "n_inner",
            "intermediate_size_mlp",
        ),
        MAX_INTERMEDIATE_SIZE,
    ),
    **dict.fromkeys(
        (
            "num_hidden_layers",
            "n_layer",
            "first_k_dense_replace",
            "decoder_sparse_step",
            "moe_layer_freq",
            "interleave_moe_layer_step",
            "sliding_window_pattern",
        ),
        MAX_LAYERS,
    ),
    **dict.fromkeys(("num_attention_heads", "n_head", "num_key_value_heads", "num_kv_heads", "n_head_kv"), MAX_HEADS),
    **dict.fromkeys(("head_dim", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"), MAX_HEAD_DIM),
    **dict.fromkeys(
        (
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "num_experts_per_tok",
            "experts_per_token",
            "n_shared_experts",
        ),
        MAX_EXPERTS,
    ),
    "vocab_size": MAX_VOCAB_SIZE,
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "sliding_window", "attention_chunk_size"), MAX_CONTEXT_TOKENS
    ),
    # quantization_config
    **dict.fromkeys(("bits", "w_bit", "num_bits"), 32),
    **dict.fromkeys(("group_size", "q_group_size"), MAX_INTERMEDIATE_SIZE),
}


def describe_number(value: float) -> str:
    """A bound or a value as people write it: 10,000,000 rather than 1e+07 (but 65535, not 65,535)."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        whole = int(value)
        digits = len(str(abs(whole))) if abs(whole) < 10**4000 else 4000
        if digits > 15:
            return f"a number of {digits:,} digits"
        return f"{whole:,}" if abs(whole) >= 100_000 else str(whole)
    return f"{value:g}"


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise InputError unless the value is a finite number with ``low <= value <= high``
    (a boolean is not a number)."""
    from inferplan.errors import InputError

    between = f"between {describe_number(low)} and {describe_number(high)}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise InputError(f"{name} must be a finite number {between}")
    if not low <= value <= high:
        raise InputError(f"{name} must be {between}, got {describe_number(value)}")
