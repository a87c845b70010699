"""Parameter counts against published counts, and the per-part formulas."""

from __future__ import annotations

import pytest

from inferplan.specs.model import AttentionSpec, MlpSpec, attention_params, count_params, mlp_params
from inferplan.specs.model_catalog import catalog_models, load_model, parse_param_count

NOMINAL_TOLERANCE = 0.05  # names such as "Falcon-40B" are not counts


def _tolerance(published: str, kind: str | None) -> float:
    value, rounding = parse_param_count(published)
    if kind == "nominal":
        return max(NOMINAL_TOLERANCE * value, rounding)
    return max(0.005 * value, rounding)


@pytest.mark.parametrize("name", sorted(catalog_models()))
def test_total_params_match_published(name: str) -> None:
    entry = catalog_models()[name]
    assert entry.published_total, f"{name} has no published count"
    counts = count_params(load_model(name))
    expected, _ = parse_param_count(entry.published_total)
    tol = _tolerance(entry.published_total, entry.published_meta.get("kind"))
    assert abs(counts.total - expected) <= tol, (name, counts.total, expected)


@pytest.mark.parametrize("name", sorted(n for n, e in catalog_models().items() if e.published_active))
def test_active_params_match_published(name: str) -> None:
    entry = catalog_models()[name]
    assert entry.published_active is not None
    counts = count_params(load_model(name))
    convention = entry.published_meta.get("active_convention")
    active = counts.active_excluding_embedding if convention else counts.active
    expected, _ = parse_param_count(entry.published_active)
    tol = _tolerance(entry.published_active, entry.published_meta.get("active_kind"))
    assert abs(active - expected) <= tol, (name, active, expected)


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("llama-3.1-8b", 8.03e9),
        ("llama-3.1-70b", 70.6e9),
        ("llama-3.1-405b", 405.9e9),
        ("mixtral-8x7b", 46.7e9),
        ("deepseek-v3", 671e9),
        ("qwen2.5-72b", 72.7e9),
        ("gemma-2-27b", 27.2e9),
    ],
)
def test_issue_reference_counts_within_half_percent(name: str, published: float) -> None:
    assert abs(count_params(load_model(name)).total / published - 1) < 0.005


def test_mixtral_active_and_deepseek_active() -> None:
    assert abs(count_params(load_model("mixtral-8x7b")).active / 12.9e9 - 1) < 0.005
    v3 = count_params(load_model("deepseek-v3"))
    assert 36.5e9 < v3.active_excluding_embedding < 37.5e9


def test_catalog_spans_sizes_and_kinds() -> None:
    specs = [load_model(n) for n in catalog_models()]
    totals = [count_params(s).total for s in specs]
    assert len(specs) >= 20
    assert min(totals) < 0.6e9 and max(totals) > 671e9 - 1
    kinds = {s.attention.kind for s in specs}
    assert {"mha", "gqa", "mqa", "mla"} <= kinds
    assert any(s.is_moe for s in specs) and any(not s.is_moe for s in specs)
    assert all(catalog_models()[s.name].config_source for s in specs)


def test_attention_params_gqa_by_hand() -> None:
    attn = AttentionSpec(num_heads=32, num_kv_heads=8, head_dim=128, v_head_dim=128)
    d = 4096
    assert attention_params(d, attn) == d * 4096 + 2 * d * 1024 + 4096 * d


def test_attention_params_with_biases_norms_and_sinks() -> None:
    attn = AttentionSpec(4, 2, 16, 16, qkv_bias=True, o_bias=True, qk_norm=True, sinks=True)
    base = 64 * (64 + 32 + 32) + 64 * 64
    assert attention_params(64, attn) == base + (64 + 32 + 32) + 64 + 2 * 16 + 4


def test_mla_attention_params_by_hand() -> None:
    attn = AttentionSpec(
        num_heads=128,
        num_kv_heads=128,
        head_dim=192,
        v_head_dim=128,
        kv_lora_rank=512,
        q_lora_rank=1536,
        qk_rope_head_dim=64,
    )
    d = 7168
    q = d * 1536 + 1536 + 1536 * 128 * 192
    kv = d * (512 + 64) + 512 + 512 * 128 * (128 + 128)
    o = 128 * 128 * d
    assert attention_params(d, attn) == q + kv + o
    assert attn.kind == "mla"


@pytest.mark.parametrize(
    ("mlp", "expected"),
    [
        (MlpSpec(100), 3 * 10 * 100),
        (MlpSpec(100, gated=False), 2 * 10 * 100),
        (MlpSpec(100, bias=True), 3000 + 200 + 10),
        (MlpSpec(100, gated=False, bias=True), 2000 + 110),
    ],
)
def test_mlp_params(mlp: MlpSpec, expected: int) -> None:
    assert mlp_params(10, mlp) == expected


def test_sliding_window_layers() -> None:
    gemma = load_model("gemma-2-27b")
    windows = [layer.window_tokens for layer in gemma.layers]
    assert windows[0] == 4096 and windows[1] is None
    assert sum(1 for w in windows if w) == 23
    oss = load_model("gpt-oss-120b")
    assert sum(1 for layer in oss.layers if layer.window_tokens == 128) == 18
    g3 = load_model("gemma-3-1b")
    assert [layer.window_tokens for layer in g3.layers][:6] == [512] * 5 + [None]


def test_tied_embeddings_counted_once() -> None:
    tied = count_params(load_model("qwen2.5-0.5b"))
    assert tied.lm_head == 0 and tied.embedding == 151936 * 896


def test_multimodal_wrapper_reads_text_config() -> None:
    scout = load_model("llama-4-scout-17b-16e")
    assert scout.is_moe and scout.moe is not None and scout.moe.num_experts == 16
    assert any("vision" in note for note in scout.notes)
    maverick = load_model("llama-4-maverick-17b-128e")
    assert maverick.num_moe_layers == 24


def test_quantized_checkpoints_are_recognised() -> None:
    assert load_model("deepseek-v3").quantization.precision == "fp8"  # type: ignore[union-attr]
    oss = load_model("gpt-oss-20b").quantization
    assert oss is not None and oss.precision == "mxfp4" and oss.quantized_parts == ("experts",)
    assert load_model("llama-3.1-70b-fp8").quantization.precision == "fp8"  # type: ignore[union-attr]
    assert load_model("llama-3.1-8b").quantization is None


@pytest.mark.parametrize("text,value", [("8.03B", 8.03e9), ("494M", 494e6), ("1T", 1e12)])
def test_parse_param_count(text: str, value: float) -> None:
    assert parse_param_count(text)[0] == pytest.approx(value)
