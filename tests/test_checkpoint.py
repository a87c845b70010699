"""Safetensors headers: exact counts from a locally built checkpoint, never loading tensors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from inferplan.errors import ConfigError
from inferplan.specs.checkpoint import read_checkpoint, read_safetensors_header
from inferplan.specs.model_catalog import load_model
from tests.conftest import tiny_llama_config


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    sizes = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_counts_and_dtypes(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001.safetensors", {"a": ("BF16", [64, 32]), "b": ("F32", [10])})
    write_safetensors(tmp_path / "model-00002.safetensors", {"c": ("F8_E4M3", [4, 4])})
    info = read_checkpoint(tmp_path)
    assert info is not None
    assert info.num_params == 64 * 32 + 10 + 16
    assert info.num_bytes == 64 * 32 * 2 + 40 + 16
    assert info.dtypes == {"BF16", "F32", "F8_E4M3"} and info.num_files == 2


def test_model_folder_reports_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(tiny_llama_config()))
    write_safetensors(tmp_path / "model.safetensors", {"embed": ("BF16", [256, 64])})
    spec = load_model(str(tmp_path))
    assert any("16,384 parameters" in note for note in spec.notes)


def test_no_safetensors_is_none(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) is None


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 500) + b'{"a": 1')
    with pytest.raises(ConfigError, match="truncated"):
        read_safetensors_header(path)


def test_too_short_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"abc")
    with pytest.raises(ConfigError, match="too short"):
        read_safetensors_header(path)


def test_malformed_tensor_entry(tmp_path: Path) -> None:
    raw = json.dumps({"w": {"dtype": "BF16"}}).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(ConfigError, match="lacks shape"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b'{"w": {"dtype": "BF16", "shape": [NaN], "data_offsets": [0, 2]}}', "NaN is not a JSON number"),
        (b'{"w": {"dtype": "BF16", "shape": [1e400], "data_offsets": [0, 2]}}', "too large to be a finite"),
        (b'{"w": {"dtype": "BF16", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 2]}}', "5,000 digits"),
        (b'{"w": {"dtype": "BF16", "shape": ["4"], "data_offsets": [0, 8]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [2.5], "data_offsets": [0, 8]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [true], "data_offsets": [0, 2]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [-4], "data_offsets": [0, 8]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [4], "data_offsets": [8, 0]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [4], "data_offsets": "0-8"}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [1099511627776, 1099511627776]}}', "malformed shape"),
        (b'{"w": {"dtype": "BF16", "shape": [4], "x": "\xff"}}', "not UTF-8 text"),
        (b"[1, 2]", "header must be a JSON object"),
    ],
)
def test_hostile_headers_are_one_line_errors(tmp_path: Path, header: bytes, message: str) -> None:
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ConfigError, match=message) as info:
        read_checkpoint(tmp_path)
    assert "\n" not in str(info.value)
