"""The hardware catalog: required GPUs, validated fields, MIG slices, aliases."""

from __future__ import annotations

import pytest

from inferplan.errors import InputError, UnknownGpuError
from inferplan.specs.hardware import get_gpu, get_link, gpu_catalog, link_catalog, mig_slice
from inferplan.units import GIB

REQUIRED = [
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "a100-pcie-40gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200-sxm",
    "h200-nvl",
    "gh200-96gb",
    "gh200-144gb",
    "b300",
    "b200",
    "gb200",
    "l40s",
    "l4",
    "rtx-4090",
    "mi300x",
    "mi325x",
    "mi355x",
]


def test_required_gpus_present() -> None:
    assert set(REQUIRED) <= set(gpu_catalog())


@pytest.mark.parametrize("gpu_id", REQUIRED)
def test_gpu_entries_are_complete_and_dense(gpu_id: str) -> None:
    g = gpu_catalog()[gpu_id]
    assert g.memory_bytes > 16 * GIB and g.mem_bw_bytes_per_s > 1e11 and g.tdp_w > 50
    assert "bf16" in g.peak_flops and g.sources
    assert g.visible_memory_bytes <= g.memory_bytes
    # dense BF16 never exceeds the sparse-marketing ceiling of 2.5 PFLOPS for one chip
    assert g.peak_flops["bf16"] <= 2.5e15
    for dtype, measured in g.measured_matmul_flops.items():
        assert measured < g.peak_flops[dtype]


def test_fp8_only_where_supported() -> None:
    assert not get_gpu("a100-sxm-80gb").supports("fp8")
    assert get_gpu("h100-sxm").supports("fp8") and get_gpu("l40s").supports("fp8")
    assert get_gpu("a100").flops_for("fp8") == get_gpu("a100").peak_flops["bf16"]


def test_h100_numbers() -> None:
    g = get_gpu("H100")
    assert g.id == "h100-sxm"
    assert g.peak_flops["bf16"] == pytest.approx(989e12)
    assert g.mem_bw_bytes_per_s == pytest.approx(3.35e12)


def test_mig_slice_scales() -> None:
    full = get_gpu("h100-sxm")
    s = mig_slice(full, "3g.40gb")
    assert s.peak_flops["bf16"] == pytest.approx(full.peak_flops["bf16"] * 3 / 7)
    assert s.memory_bytes == pytest.approx(full.memory_bytes / 2)
    assert get_gpu("h100-sxm:3g.40gb").id == "h100-sxm:3g.40gb"
    with pytest.raises(InputError, match="no MIG profile"):
        get_gpu("h100-sxm:9g.99gb")
    with pytest.raises(InputError, match="no MIG"):
        get_gpu("l40s:1g.10gb")


def test_unknown_gpu_suggests() -> None:
    with pytest.raises(UnknownGpuError) as info:
        get_gpu("h1000-sxm")
    assert "h100-sxm" in info.value.suggestions


def test_links() -> None:
    links = link_catalog()
    assert {
        "nvlink3",
        "nvlink4",
        "nvlink5",
        "pcie4",
        "pcie5",
        "pcie6",
        "ib-hdr",
        "ib-ndr",
        "ib-xdr",
        "roce-400g",
    } <= set(links)
    assert get_link("nvlink4").bw_bytes_per_s == pytest.approx(450e9)
    for g in gpu_catalog().values():
        assert g.scale_up is None or g.scale_up in links
        assert g.pcie in links
    with pytest.raises(InputError):
        get_link("nvlink9")


def test_bad_gpu_file_names_entry_and_field(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from inferplan.errors import ConfigError
    from inferplan.specs.hardware import load_gpu_file

    path = Path(str(tmp_path)) / "mygpus.yaml"
    path.write_text(
        "- id: x\n  name: X\n  vendor: v\n  architecture: a\n  form_factor: pcie\n"
        "  memory_gib: -4\n  mem_bw_tb_s: 1\n  dense_tflops: {bf16: 10}\n"
        "  scale_up: null\n  pcie: pcie4\n  tdp_w: 100\n  num_sms: 10\n  mig: []\n"
        "  sources: vendor page\n"
    )
    with pytest.raises(ConfigError, match=r"mygpus.yaml: entry 1, field 'memory_gib'"):
        load_gpu_file(path)
    path.write_text("- id: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_gpu_file(path)
