"""Build a :class:`~inferplan.model.ModelSpec` from a Hugging Face ``config.json`` dict.

Only the config's numbers are read; no code from a model repository is ever executed.
Each supported ``model_type`` maps to a family function below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from inferplan.errors import ConfigError, UnsupportedModelError
from inferplan.specs.config_reader import ConfigReader, describe_value, shown_text
from inferplan.specs.model import AttentionSpec, LayerSpec, MlpSpec, ModelSpec, MoeSpec
from inferplan.specs.quantization import parse_quantization

__all__ = ["SUPPORTED_MODEL_TYPES", "spec_from_config"]

Config = Mapping[str, Any]


def _dtype(cfg: Config) -> str:
    raw = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "bf16"}.get(raw, "bf16")


def _windows_from_layer_types(r: ConfigReader, n_layers: int, window: int | None) -> list[int | None]:
    types = r.items("layer_types", n_layers)
    if types is None:
        raise r.fail(f"field 'layer_types' must list one type per layer ({n_layers})")
    out: list[int | None] = []
    for t in types:
        if not isinstance(t, str):
            raise r.fail(
                f"field 'layer_types' must list layer types such as \"full_attention\", got {describe_value(t)}"
            )
        sliding = t.startswith("sliding") or t == "chunked_attention"
        if sliding and not window:
            raise r.fail("sliding layers need a positive 'sliding_window'")
        out.append(window if sliding else None)
    return out


def _head_dim(r: ConfigReader, heads: int, d: int | None = None) -> int:
    """hidden_size / heads, the head dimension when the config gives none."""
    d = r.positive("hidden_size", "n_embd", "d_model") if d is None else d
    if d < heads:
        raise r.fail(f"hidden_size ({d}) is smaller than the number of attention heads ({heads})")
    return d // heads


def _moe_spec(r: ConfigReader, experts_keys: tuple[str, ...], topk_keys: tuple[str, ...]) -> tuple[int, int]:
    """(experts, experts per token), checked against each other."""
    experts = r.positive(*experts_keys)
    top_k = r.positive(*topk_keys)
    if top_k > experts:
        raise r.fail(
            f"{r.key(*topk_keys)} ({top_k}) is more than {r.key(*experts_keys)} ({experts}); "
            "each token is routed to some of the experts there are"
        )
    return experts, top_k


def _attn(
    r: ConfigReader,
    *,
    qkv_bias: bool = False,
    o_bias: bool = False,
    qk_norm: bool = False,
    sinks: bool = False,
) -> AttentionSpec:
    heads = r.positive("num_attention_heads", "n_head")
    kv = r.positive("num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads)
    if heads % kv:
        raise r.fail(f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv})")
    head_dim = r.positive("head_dim", default=_head_dim(r, heads))
    return AttentionSpec(heads, kv, head_dim, head_dim, qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm, sinks=sinks)


@dataclass(frozen=True, slots=True)
class _Body:
    """What a family function reads from a config beyond the common fields."""

    attn: AttentionSpec
    mlp: MlpSpec
    layers: list[LayerSpec]
    moe: MoeSpec | None = None
    norms_per_layer: int = 0
    final_norm: int = 0
    tie_default: bool = False
    extra: int = 0


def _base(r: ConfigReader, name: str, body: _Body) -> ModelSpec:
    return ModelSpec(
        name=name,
        model_type=str(r.cfg.get("model_type")),
        hidden_size=r.positive("hidden_size", "n_embd"),
        vocab_size=r.positive("vocab_size"),
        attention=body.attn,
        mlp=body.mlp,
        layers=tuple(body.layers),
        moe=body.moe,
        tie_word_embeddings=r.flag("tie_word_embeddings", body.tie_default),
        norm_params_per_layer=body.norms_per_layer,
        final_norm_params=body.final_norm,
        extra_params=body.extra,
        max_position_embeddings=r.integer("max_position_embeddings", "n_positions", default=4096),
        native_dtype=_dtype(r.cfg),
        quantization=parse_quantization(r.cfg, r.origin),
    )


def _llama_like(r: ConfigReader, name: str) -> ModelSpec:
    """Llama 2/3, CodeLlama, Yi, Mistral, Qwen2/2.5/3, Phi-3: RMSNorm, gated MLP."""
    mt = r.cfg.get("model_type")
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    qkv_bias = r.flag("attention_bias", mt == "qwen2") or mt == "qwen2"
    attn = _attn(
        r,
        qkv_bias=qkv_bias,
        o_bias=r.flag("attention_bias", False) and mt == "llama",
        qk_norm=mt == "qwen3",
    )
    window = r.opt_int("sliding_window")
    use_window = r.flag("use_sliding_window", mt not in ("qwen2", "qwen3"))
    if r.cfg.get("layer_types") is not None:
        windows = _windows_from_layer_types(r, n, window)
    else:
        windows = [window if (window and use_window) else None] * n
    layers = [LayerSpec(w) for w in windows]
    mlp = MlpSpec(r.positive("intermediate_size"), gated=True, bias=r.flag("mlp_bias", False))
    return _base(r, name, _Body(attn, mlp, layers, norms_per_layer=2 * d, final_norm=d))


def _moe_layers(r: ConfigReader, n: int, windows: list[int | None]) -> list[LayerSpec]:
    step = r.integer("decoder_sparse_step", default=1) or 1
    dense_only = r.layer_indices("mlp_only_layers", n)
    return [LayerSpec(windows[i], moe=(i not in dense_only) and (i + 1) % step == 0) for i in range(n)]


def _mixtral_qwen_moe(r: ConfigReader, name: str) -> ModelSpec:
    """Mixtral, Qwen2-MoE, Qwen3-MoE: every (sparse-step) layer is a routed MoE."""
    mt = r.cfg.get("model_type")
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    attn = _attn(r, qkv_bias=mt == "qwen2_moe", qk_norm=mt == "qwen3_moe")
    window = r.opt_int("sliding_window")
    use_window = r.flag("use_sliding_window", mt == "mixtral")
    windows: list[int | None] = [window if (window and use_window) else None] * n
    experts, top_k = _moe_spec(r, ("num_local_experts", "num_experts"), ("num_experts_per_tok",))
    expert_inter = r.positive("moe_intermediate_size", "intermediate_size")
    shared_inter = r.integer("shared_expert_intermediate_size", default=0)
    moe = MoeSpec(
        num_experts=experts,
        top_k=top_k,
        expert=MlpSpec(expert_inter),
        shared=MlpSpec(shared_inter) if shared_inter else None,
    )
    # Qwen2-MoE gates its shared expert with a d x 1 linear layer per layer.
    layers = _moe_layers(r, n, windows)
    shared_gate = d * sum(1 for layer in layers if layer.moe) if shared_inter else 0
    dense = MlpSpec(r.positive("intermediate_size"))
    return _base(r, name, _Body(attn, dense, layers, moe=moe, norms_per_layer=2 * d, final_norm=d, extra=shared_gate))


def _gemma(r: ConfigReader, name: str) -> ModelSpec:
    """Gemma 2 / Gemma 3 text: four RMSNorms per layer, tied embeddings, local/global layers."""
    mt = r.cfg.get("model_type")
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    attn = _attn(r, qkv_bias=r.flag("attention_bias", False), qk_norm=mt != "gemma2")
    window = r.opt_int("sliding_window")
    if r.cfg.get("layer_types") is not None:
        windows = _windows_from_layer_types(r, n, window)
    elif mt == "gemma2":
        windows = [window if i % 2 == 0 else None for i in range(n)]
    else:
        pattern = r.positive("sliding_window_pattern", default=6)
        windows = [None if (i + 1) % pattern == 0 else window for i in range(n)]
    mlp = MlpSpec(r.positive("intermediate_size"), gated=True)
    return _base(
        r,
        name,
        _Body(attn, mlp, [LayerSpec(w) for w in windows], norms_per_layer=4 * d, final_norm=d, tie_default=True),
    )


def _falcon(r: ConfigReader, name: str) -> ModelSpec:
    """Falcon 7B (MQA, one LayerNorm) and 40B/180B (new decoder: GQA, two LayerNorms)."""
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers", "n_layer")
    heads = r.positive("num_attention_heads", "n_head")
    new_arch = r.flag("new_decoder_architecture", r.cfg.get("model_type") == "RefinedWeb")
    if new_arch:
        kv = r.positive("num_kv_heads", "n_head_kv", default=heads)
        if heads % kv:
            raise r.fail(f"num_attention_heads ({heads}) is not a multiple of num_kv_heads ({kv})")
    else:
        kv = 1 if r.flag("multi_query", True) else heads
    bias = r.flag("bias", False)
    head_dim = _head_dim(r, heads, d)
    attn = AttentionSpec(heads, kv, head_dim, head_dim, qkv_bias=bias, o_bias=bias)
    inter = r.positive("ffn_hidden_size", default=4 * d)
    parallel = r.flag("parallel_attn", True)
    lns = 2 if (new_arch or not parallel) else 1
    mlp = MlpSpec(inter, gated=False, bias=bias)
    return _base(
        r, name, _Body(attn, mlp, [LayerSpec()] * n, norms_per_layer=lns * 2 * d, final_norm=2 * d, tie_default=True)
    )


def _gpt_neox(r: ConfigReader, name: str) -> ModelSpec:
    """GPT-NeoX / Pythia: biased projections, plain GELU MLP, two LayerNorms per layer."""
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    attn = _attn(r, qkv_bias=True, o_bias=True)
    mlp = MlpSpec(r.positive("intermediate_size"), gated=False, bias=True)
    return _base(r, name, _Body(attn, mlp, [LayerSpec()] * n, norms_per_layer=4 * d, final_norm=2 * d))


def _gptj(r: ConfigReader, name: str) -> ModelSpec:
    """GPT-J: parallel attention and MLP after one LayerNorm, unbiased q/k/v/o, a biased
    plain GELU MLP and a biased LM head."""
    d = r.positive("n_embd", "hidden_size")
    n = r.positive("n_layer", "num_hidden_layers")
    heads = r.positive("n_head", "num_attention_heads")
    head_dim = _head_dim(r, heads, d)
    attn = AttentionSpec(heads, heads, head_dim, head_dim)
    mlp = MlpSpec(r.integer("n_inner", default=4 * d) or 4 * d, gated=False, bias=True)
    return _base(
        r,
        name,
        _Body(attn, mlp, [LayerSpec()] * n, norms_per_layer=2 * d, final_norm=2 * d, extra=r.positive("vocab_size")),
    )


def _deepseek(r: ConfigReader, name: str) -> ModelSpec:
    """DeepSeek-V2/V3, Kimi K2: MLA attention, MoE with shared experts after k dense layers.

    The multi-token-prediction module (``num_nextn_predict_layers``) is not part of the
    served model's published count and is not counted.
    """
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    heads = r.positive("num_attention_heads")
    nope, rope = r.positive("qk_nope_head_dim"), r.positive("qk_rope_head_dim")
    attn = AttentionSpec(
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=nope + rope,
        v_head_dim=r.positive("v_head_dim"),
        kv_lora_rank=r.positive("kv_lora_rank"),
        q_lora_rank=r.integer("q_lora_rank", default=0),
        qk_rope_head_dim=rope,
    )
    first_dense = r.integer("first_k_dense_replace", default=0)
    if first_dense > n:
        raise r.fail(f"first_k_dense_replace ({first_dense}) is more than num_hidden_layers ({n})")
    freq = r.integer("moe_layer_freq", default=1) or 1
    layers = [LayerSpec(moe=i >= first_dense and i % freq == 0) for i in range(n)]
    expert_inter = r.positive("moe_intermediate_size")
    n_shared = r.integer("n_shared_experts", default=0)
    experts, top_k = _moe_spec(r, ("n_routed_experts",), ("num_experts_per_tok",))
    moe = MoeSpec(
        num_experts=experts,
        top_k=top_k,
        expert=MlpSpec(expert_inter),
        shared=MlpSpec(n_shared * expert_inter) if n_shared else None,
        router_bias=r.cfg.get("topk_method") == "noaux_tc",
    )
    dense = MlpSpec(r.positive("intermediate_size"))
    return _base(r, name, _Body(attn, dense, layers, moe=moe, norms_per_layer=2 * d, final_norm=d))


def _gpt_oss(r: ConfigReader, name: str) -> ModelSpec:
    """gpt-oss: alternating 128-token sliding / full layers, attention sinks, biased MoE."""
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    attn = _attn(r, qkv_bias=True, o_bias=True, sinks=True)
    windows = _windows_from_layer_types(r, n, r.opt_int("sliding_window"))
    inter = r.positive("intermediate_size")
    experts, top_k = _moe_spec(r, ("num_local_experts",), ("num_experts_per_tok", "experts_per_token"))
    moe = MoeSpec(
        num_experts=experts,
        top_k=top_k,
        expert=MlpSpec(inter, gated=True, bias=True),
        router_bias=True,
    )
    layers = [LayerSpec(w, moe=True) for w in windows]
    return _base(r, name, _Body(attn, MlpSpec(inter), layers, moe=moe, norms_per_layer=2 * d, final_norm=d))


def _llama4(r: ConfigReader, name: str) -> ModelSpec:
    """Llama 4 text: MoE every ``interleave_moe_layer_step`` layers with one shared expert;
    three of four layers use chunked local attention (KV bounded by the chunk size)."""
    d = r.positive("hidden_size")
    n = r.positive("num_hidden_layers")
    attn = _attn(r)
    chunk = r.opt_int("attention_chunk_size")
    no_rope = r.items("no_rope_layers", n)
    if no_rope is not None and any(x not in (0, 1) for x in no_rope):  # 0, 1, false or true
        raise r.fail("field 'no_rope_layers' must list 0 or 1 for each layer")
    uses_rope = [bool(x) for x in no_rope] if no_rope is not None else [(i + 1) % 4 != 0 for i in range(n)]
    step = r.integer("interleave_moe_layer_step", default=1) or 1
    layers = [LayerSpec(chunk if (chunk and uses_rope[i]) else None, moe=(i + 1) % step == 0) for i in range(n)]
    inter = r.positive("intermediate_size")
    experts, top_k = _moe_spec(r, ("num_local_experts",), ("num_experts_per_tok",))
    moe = MoeSpec(
        num_experts=experts,
        top_k=top_k,
        expert=MlpSpec(inter),
        shared=MlpSpec(inter),
    )
    dense = MlpSpec(r.positive("intermediate_size_mlp", "intermediate_size"))
    return _base(r, name, _Body(attn, dense, layers, moe=moe, norms_per_layer=2 * d, final_norm=d))


_FAMILIES: dict[str, Callable[[ConfigReader, str], ModelSpec]] = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "qwen2": _llama_like,
    "qwen3": _llama_like,
    "phi3": _llama_like,
    "yi": _llama_like,
    "mixtral": _mixtral_qwen_moe,
    "qwen2_moe": _mixtral_qwen_moe,
    "qwen3_moe": _mixtral_qwen_moe,
    "gemma2": _gemma,
    "gemma3_text": _gemma,
    "falcon": _falcon,
    "RefinedWeb": _falcon,
    "RefinedWebModel": _falcon,
    "gpt_neox": _gpt_neox,
    "gptj": _gptj,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "gpt_oss": _gpt_oss,
    "llama4_text": _llama4,
}
#: Multimodal wrappers whose language model sits in ``text_config``.
_WRAPPERS = {"gemma3": "gemma3_text", "llama4": "llama4_text"}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(set(_FAMILIES) | set(_WRAPPERS)))


def spec_from_config(cfg: Config, name: str, origin: str = "config.json") -> ModelSpec:
    """Describe the language model of a Hugging Face config (a parsed ``config.json``)."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{origin}: expected a JSON object at the top level, got {describe_value(cfg)}")
    model_type = cfg.get("model_type")
    if model_type is None:
        raise ConfigError(f"{origin}: missing field 'model_type'; is this a Hugging Face config.json?")
    if not isinstance(model_type, str):
        raise ConfigError(f"{origin}: field 'model_type' must be a string, got {describe_value(model_type)}")
    try:
        return _family_spec(cfg, model_type, name, origin)
    except (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError) as exc:
        # the last guard for untrusted text: every field is checked above, so this names a bug
        raise ConfigError(f"{origin}: a field has the wrong type or value ({type(exc).__name__}: {exc})") from None


def _family_spec(cfg: Config, model_type: str, name: str, origin: str) -> ModelSpec:
    if model_type in _WRAPPERS:
        text = cfg.get("text_config")
        if not isinstance(text, Mapping):
            raise ConfigError(f"{origin}: field 'text_config' must be an object for model_type '{model_type}'")
        inner = {**text, "model_type": _WRAPPERS[model_type]}
        if "quantization_config" in cfg and "quantization_config" not in inner:
            inner["quantization_config"] = cfg["quantization_config"]
        spec = _FAMILIES[_WRAPPERS[model_type]](ConfigReader(inner, origin, "text_config."), name)
        note = "multimodal model: only the language model is counted (the vision tower is not)"
        return _with_notes(spec, note, source_type=model_type)
    family = _FAMILIES.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"{origin}: model_type '{shown_text(model_type)}' is not supported; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return family(ConfigReader(cfg, origin), name)


def _with_notes(spec: ModelSpec, note: str, source_type: str) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, model_type=source_type, notes=(*spec.notes, note))
