"""Config parsing: every supported family, and a clear error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferplan.errors import ConfigError, UnknownModelError, UnsupportedModelError
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
