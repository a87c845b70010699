"""What a model is: its shape (:class:`ModelSpec`) and its exact parameter counts.

Parameter counts follow the tensors each architecture creates (see ``hf_config`` for
the mapping from a Hugging Face ``config.json``):

* attention, standard: ``q = d*H*hd, k = v = d*KV*hd, o = H*hd*d`` (+ biases)
* attention, MLA (DeepSeek-V2/V3): ``q = d*H*(nope+rope)`` or the LoRA pair
  ``d*q_lora + q_lora*H*(nope+rope)``; ``kv_a = d*(kv_lora+rope)``,
  ``kv_b = kv_lora*H*(nope+v)``, ``o = H*v*d`` (+ the LoRA norms)
* gated MLP: ``3*d*I``; plain MLP: ``2*d*I`` (+ biases)
* MoE: ``E`` routed experts, the router ``d*E`` and the shared experts
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AttentionSpec",
    "LayerSpec",
    "MlpSpec",
    "ModelSpec",
    "MoeSpec",
    "ParamCounts",
    "QuantInfo",
    "attention_params",
    "count_params",
    "mlp_params",
]


@dataclass(frozen=True, slots=True)
class AttentionSpec:
    """One attention block. For MLA, ``head_dim`` is ``qk_nope + qk_rope``."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    sinks: bool = False
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0

    @property
    def kind(self) -> str:
        """'mla', 'mha', 'mqa' or 'gqa'."""
        if self.kv_lora_rank:
            return "mla"
        if self.num_kv_heads == self.num_heads:
            return "mha"
        return "mqa" if self.num_kv_heads == 1 else "gqa"

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim


@dataclass(frozen=True, slots=True)
class MlpSpec:
    intermediate_size: int
    gated: bool = True
    bias: bool = False


@dataclass(frozen=True, slots=True)
class MoeSpec:
    num_experts: int
    top_k: int
    expert: MlpSpec
    shared: MlpSpec | None = None  # all shared experts together, as one MLP of summed width
    router_bias: bool = False


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One decoder layer: its attention window (None = full context) and FFN kind."""

    window_tokens: int | None = None
    moe: bool = False


@dataclass(frozen=True, slots=True)
class QuantInfo:
    """What a checkpoint's ``quantization_config`` says."""

    method: str  # fp8, awq, gptq, compressed-tensors, bitsandbytes, mxfp4, modelopt
    precision: str  # inferplan precision name this maps to
    bits: int
    group_size: int = 0
    quantized_parts: tuple[str, ...] = ("attention", "mlp", "experts")
    unquantized_modules: tuple[str, ...] = ()  # entries of the format's ignore list, as written
    kv_dtype: str = ""  # the KV-cache scheme the config declares ('' when none)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The shape of a decoder-only transformer, as far as sizing and speed need it."""

    name: str
    model_type: str
    hidden_size: int
    vocab_size: int
    attention: AttentionSpec
    mlp: MlpSpec
    layers: tuple[LayerSpec, ...]
    moe: MoeSpec | None = None
    tie_word_embeddings: bool = False
    norm_params_per_layer: int = 0
    final_norm_params: int = 0
    extra_params: int = 0  # e.g. learned position embeddings
    max_position_embeddings: int = 4096
    native_dtype: str = "bf16"
    quantization: QuantInfo | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_moe_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.moe)

    @property
    def is_moe(self) -> bool:
        return self.moe is not None and self.num_moe_layers > 0


@dataclass(frozen=True, slots=True)
class ParamCounts:
    """Parameter counts by part. ``total`` counts every routed expert; ``active`` one token's."""

    embedding: int
    lm_head: int
    attention: int
    dense_mlp: int
    routed_experts: int
    shared_experts: int
    router: int
    norms: int
    extra: int
    active_routed_experts: int

    @property
    def total(self) -> int:
        return (
            self.embedding
            + self.lm_head
            + self.attention
            + self.dense_mlp
            + self.routed_experts
            + self.shared_experts
            + self.router
            + self.norms
            + self.extra
        )

    @property
    def active(self) -> int:
        """Parameters one token touches: all but the routed experts it is not sent to."""
        return self.total - self.routed_experts + self.active_routed_experts

    @property
    def active_excluding_embedding(self) -> int:
        """Active parameters without the input embedding (a table lookup, not a GEMM):
        the convention of the DeepSeek and gpt-oss model cards."""
        return self.active - self.embedding

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.lm_head


def attention_params(hidden_size: int, attn: AttentionSpec) -> int:
    """Parameters of one attention block (projections, biases, q/k norms, sinks)."""
    d = hidden_size
    if attn.kv_lora_rank:
        nope_rope = attn.head_dim
        q = (
            d * attn.q_lora_rank + attn.q_lora_rank + attn.q_lora_rank * attn.num_heads * nope_rope
            if attn.q_lora_rank
            else d * attn.num_heads * nope_rope
        )
        kv_a = d * (attn.kv_lora_rank + attn.qk_rope_head_dim) + attn.kv_lora_rank
        nope = nope_rope - attn.qk_rope_head_dim
        kv_b = attn.kv_lora_rank * attn.num_heads * (nope + attn.v_head_dim)
        o = attn.num_heads * attn.v_head_dim * d
        return q + kv_a + kv_b + o
    q_dim = attn.num_heads * attn.head_dim
    k_dim = attn.num_kv_heads * attn.head_dim
    v_dim = attn.num_kv_heads * attn.v_head_dim
    total = d * (q_dim + k_dim + v_dim) + attn.num_heads * attn.v_head_dim * d
    if attn.qkv_bias:
        total += q_dim + k_dim + v_dim
    if attn.o_bias:
        total += d
    if attn.qk_norm:
        total += 2 * attn.head_dim
    if attn.sinks:
        total += attn.num_heads
    return total


def mlp_params(hidden_size: int, mlp: MlpSpec) -> int:
    """Gated (SwiGLU/GeGLU): 3*d*I (+2I+d bias); plain: 2*d*I (+I+d bias)."""
    d, inter = hidden_size, mlp.intermediate_size
    if mlp.gated:
        return 3 * d * inter + ((2 * inter + d) if mlp.bias else 0)
    return 2 * d * inter + ((inter + d) if mlp.bias else 0)


def count_params(spec: ModelSpec) -> ParamCounts:
    """Exact parameter counts of ``spec`` by part (see the module docstring)."""
    d = spec.hidden_size
    n_moe = spec.num_moe_layers if spec.moe else 0
    n_dense = spec.num_layers - n_moe
    routed = shared = router = active_routed = 0
    if spec.moe and n_moe:
        per_expert = mlp_params(d, spec.moe.expert)
        routed = n_moe * spec.moe.num_experts * per_expert
        active_routed = n_moe * spec.moe.top_k * per_expert
        shared = n_moe * (mlp_params(d, spec.moe.shared) if spec.moe.shared else 0)
        router = n_moe * (d * spec.moe.num_experts + (spec.moe.num_experts if spec.moe.router_bias else 0))
    embedding = spec.vocab_size * d
    return ParamCounts(
        embedding=embedding,
        lm_head=0 if spec.tie_word_embeddings else embedding,
        attention=spec.num_layers * attention_params(d, spec.attention),
        dense_mlp=n_dense * mlp_params(d, spec.mlp),
        routed_experts=routed,
        shared_experts=shared,
        router=router,
        norms=spec.num_layers * spec.norm_params_per_layer + spec.final_norm_params,
        extra=spec.extra_params,
        active_routed_experts=active_routed,
    )
