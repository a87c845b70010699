"""Config parsing: every supported family, and a clear error for every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inferplan.errors import ConfigError, UnknownModelError, UnsupportedModelError
from inferplan.limits import CONFIG_FIELD_MAX
from inferplan.specs.config_reader import ConfigReader, parse_json_text, read_json_file
from inferplan.specs.hf_config import SUPPORTED_MODEL_TYPES, spec_from_config
from inferplan.specs.model import count_params
from inferplan.specs.model_catalog import load_model
from inferplan.specs.quantization import parse_quantization
from tests.conftest import tiny_llama_config


def test_tiny_llama_from_file(tiny_config_file: Path) -> None:
    spec = load_model(str(tiny_config_file))
    c = count_params(spec)
    # embed + head + 2 layers x (attn 64*(64+32+32)+64*64 + mlp 3*64*128 + 2 norms) + final norm
    per_layer = 64 * 128 + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert c.total == 2 * 256 * 64 + 2 * per_layer + 64
    assert spec.attention.kind == "gqa"


def test_model_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(tiny_llama_config()))
    assert load_model(str(tmp_path)).num_layers == 2


def test_unsupported_model_type_lists_supported() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        spec_from_config({"model_type": "rwkv"}, "x")
    assert "rwkv" in str(info.value) and "llama" in str(info.value)
    assert "deepseek_v3" in SUPPORTED_MODEL_TYPES and "gemma2" in SUPPORTED_MODEL_TYPES


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    cfg = tiny_llama_config()
    del cfg["num_hidden_layers"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"config\.json: missing field 'num_hidden_layers'"):
        load_model(str(path))


def test_truncated_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama_config())[:40])
    with pytest.raises(ConfigError, match=r"not valid JSON.*truncated"):
        load_model(str(path))


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("hidden_size", -5, "between 0 and 262,144"),
        ("hidden_size", "big", "must be a whole number"),
        ("num_attention_heads", 0, "positive"),
        ("num_key_value_heads", 3, "not a multiple"),
        ("tie_word_embeddings", "yes", "true or false"),
    ],
)
def test_bad_field_values(field: str, value: object, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        spec_from_config(tiny_llama_config(**{field: value}), "x")


def test_missing_model_type_and_non_object() -> None:
    with pytest.raises(ConfigError, match="model_type"):
        spec_from_config({"hidden_size": 4}, "x")
    with pytest.raises(ConfigError, match="JSON object"):
        spec_from_config([1, 2], "x")  # type: ignore[arg-type]


def test_unknown_name_suggests() -> None:
    with pytest.raises(UnknownModelError) as info:
        load_model("llama-3.1-8")
    assert "llama-3.1-8b" in info.value.suggestions


def test_missing_path_is_clear() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_model("/nonexistent/config.json")


def test_hub_id_without_network_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from inferplan.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"hub|huggingface_hub"):
        load_model("someorg/some-model-that-is-not-cached")


@pytest.mark.parametrize(
    ("qcfg", "precision", "bits"),
    [
        ({"quant_method": "fp8"}, "fp8", 8),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4", 4),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8", 8),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4", 4),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8", 8),
        ({"quant_method": "mxfp4"}, "mxfp4", 4),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}},
            },
            "fp8",
            8,
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}},
            },
            "int4",
            4,
        ),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4", 4),
    ],
)
def test_quantization_configs(qcfg: dict[str, object], precision: str, bits: int) -> None:
    info = parse_quantization({"quantization_config": qcfg})
    assert info is not None and info.precision == precision and info.bits == bits


def test_unknown_quantization_method() -> None:
    with pytest.raises(ConfigError, match="quant_method 'hqq'"):
        parse_quantization({"quantization_config": {"quant_method": "hqq"}})


@pytest.mark.parametrize(
    "model_type",
    [
        "falcon",
        "gpt_neox",
        "phi3",
        "qwen2",
        "mistral",
        "gemma2",
        "deepseek_v2",
        "mixtral",
        "qwen3_moe",
        "gpt_oss",
    ],
)
def test_every_family_is_in_the_catalog(model_type: str) -> None:
    from inferplan.specs.model_catalog import catalog_models

    assert any(e.config["model_type"] == model_type for e in catalog_models().values())


# Untrusted config text: strict decoding, typed and bounded fields, consistent MoE settings.

MOE = {
    "mixtral": {"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen3_moe": {"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32},
    "gpt_oss": {
        "model_type": "gpt_oss",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 16,
    },
    "llama4_text": {"model_type": "llama4_text", "num_local_experts": 8, "num_experts_per_tok": 1},
    "deepseek_v3": {
        "model_type": "deepseek_v3",
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
        "kv_lora_rank": 32,
    },
}


@pytest.mark.parametrize("family", sorted(MOE))
def test_moe_configs_are_consistent(family: str) -> None:
    cfg = tiny_llama_config(**MOE[family])
    assert spec_from_config(cfg, "x").moe is not None
    experts_key = next(k for k in ("num_local_experts", "num_experts", "n_routed_experts") if k in cfg)
    with pytest.raises(ConfigError, match=rf"num_experts_per_tok \(9\) is more than {experts_key} \(8\)"):
        spec_from_config({**cfg, "num_experts_per_tok": 9}, "x")
    with pytest.raises(ConfigError, match=f"field '{experts_key}' must be positive"):
        spec_from_config({**cfg, experts_key: 0}, "x")
    with pytest.raises(ConfigError, match="field 'num_experts_per_tok' must be positive"):
        spec_from_config({**cfg, "num_experts_per_tok": 0}, "x")


def test_moe_layer_settings_are_checked() -> None:
    cfg = tiny_llama_config(**MOE["mixtral"])
    with pytest.raises(ConfigError, match="'mlp_only_layers' must list layer numbers 0 to 1"):
        spec_from_config({**cfg, "mlp_only_layers": [5]}, "x")
    deepseek = tiny_llama_config(**MOE["deepseek_v3"])
    with pytest.raises(ConfigError, match=r"first_k_dense_replace \(3\) is more than num_hidden_layers \(2\)"):
        spec_from_config({**deepseek, "first_k_dense_replace": 3}, "x")


@pytest.mark.parametrize("value", [4096.5, 64.0, True, "64", [64], {"v": 64}, None])
def test_integer_fields_take_whole_numbers_only(value: object) -> None:
    """A decimal (4096.5 and also 64.0), a boolean, a string or a list is refused; null counts as absent."""
    cfg = tiny_llama_config(hidden_size=value)
    match = "missing field 'hidden_size'" if value is None else "field 'hidden_size' must be a whole number"
    with pytest.raises(ConfigError, match=match):
        spec_from_config(cfg, "x")


@pytest.mark.parametrize(("field", "too_large"), [(k, v + 1) for k, v in sorted(CONFIG_FIELD_MAX.items())])
def test_every_field_has_an_upper_bound(field: str, too_large: int) -> None:
    reader = ConfigReader({field: too_large}, "config.json")
    with pytest.raises(ConfigError, match=f"field '{field}' must be between 0 and {CONFIG_FIELD_MAX[field]:,}"):
        reader.integer(field)
    assert reader.checked_int(field, too_large - 1) == too_large - 1


def test_every_integer_field_read_is_bounded() -> None:
    """Each field name the readers take has its own bound in limits.CONFIG_FIELD_MAX."""
    import inferplan.specs.hf_config as hf
    import inferplan.specs.quantization as quant

    source = Path(hf.__file__).read_text() + Path(quant.__file__).read_text()
    calls = re.findall(r"\.(?:integer|positive|opt_int)\(([^)]*)\)", source)
    names = {name for call in calls for name in re.findall(r'"(\w+)"', call)}
    assert len(names) > 30 and names <= set(CONFIG_FIELD_MAX), names - set(CONFIG_FIELD_MAX)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e400}', "the number 1e400 is too large"),
        ('{"a": ' + "1" * 5000 + "}", "an integer of 5,000 digits"),
        ('{"a": ' + "1" * 20 + "}", "an integer of 20 digits"),
        ("[" * 33 + "]" * 33, "JSON nested more than 32 levels"),
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
        ("", "empty"),
        ("{", "not valid JSON (line 1, column 2"),
    ],
)
def test_json_text_is_decoded_strictly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"the text: {message}")):
        parse_json_text(text, "the text")
    assert parse_json_text('{"a": [1, 2.5, "x", null, true]}', "ok") == {"a": [1, 2.5, "x", None, True]}
    assert parse_json_text("[" * 32 + "]" * 32, "ok") is not None


def test_files_are_utf8_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "llama", "x": "\xff"}')
    with pytest.raises(ConfigError, match=r"config\.json: not UTF-8 text \(byte 0xff at offset 30\)"):
        load_model(str(path))
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(tiny_llama_config()).encode())  # a BOM is fine
    assert load_model(str(path)).num_layers == 2
    with pytest.raises(ConfigError, match=r"larger than 64 bytes; a config\.json takes a few KiB"):
        read_json_file(path, max_bytes=64)
