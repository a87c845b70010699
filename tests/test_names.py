"""The one name resolver: every spelling people and tools write resolves to the right catalog
entry, a default is always stated, and nothing is substring-matched into a neighbour."""

from __future__ import annotations

import pytest

from inferplan.errors import AmbiguousNameError, InputError, UnknownGpuError
from inferplan.specs.engines import resolve_engine
from inferplan.specs.hardware import resolve_gpu
from inferplan.specs.model_catalog import load_model, resolve_catalog_name
from inferplan.specs.precision import get_kv_dtype, get_precision

# (spelling, catalog id, whether the resolver must state a default it chose)
GPU_SPELLINGS = [
    # nvidia-smi --query-gpu=name / torch.cuda.get_device_name()
    ("NVIDIA H100 80GB HBM3", "h100-sxm", False),
    ("NVIDIA H100 PCIe", "h100-pcie", False),
    ("NVIDIA H100 NVL", "h100-nvl", False),
    ("NVIDIA H200", "h200-sxm", False),
    ("NVIDIA H200 NVL", "h200-nvl", False),
    ("NVIDIA GH200 480GB", "gh200-96gb", False),
    ("NVIDIA GH200 144G HBM3e", "gh200-144gb", False),
    ("NVIDIA B200", "b200", False),
    ("NVIDIA GB200", "gb200", False),
    ("NVIDIA B300 SXM6 AC", "b300", False),
    ("NVIDIA L40S", "l40s", False),
    ("NVIDIA L4", "l4", False),
    ("NVIDIA A100-SXM4-40GB", "a100-sxm-40gb", False),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb", False),
    ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb", False),
    ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb", False),
    ("NVIDIA GeForce RTX 4090", "rtx-4090", False),
    ("NVIDIA GeForce RTX 3090", "rtx-3090", False),
    # rocm-smi / amd-smi / vLLM's ROCm names
    ("AMD Instinct MI300X", "mi300x", False),
    ("AMD Instinct MI300X OAM", "mi300x", False),
    ("AMD_Instinct_MI300X", "mi300x", False),
    ("AMD Instinct MI325X", "mi325x", False),
    ("AMD_Instinct_MI355X", "mi355x", False),
    # as people write them
    ("H100 SXM5 80GB", "h100-sxm", False),
    ("H100-SXM5-80GB", "h100-sxm", False),
    ("h100 sxm", "h100-sxm", False),
    ("h100sxm", "h100-sxm", False),
    ("H100 80GB HBM3", "h100-sxm", False),
    ("H100 (80GB HBM3)", "h100-sxm", False),
    ("H100 SXM 80GB (DGX H100)", "h100-sxm", False),
    ("HGX H100", "h100-sxm", False),
    ("H100 PCIe 80GB", "h100-pcie", False),
    ("H100 NVL 94GB", "h100-nvl", False),
    ("H100 96GB", "h100-nvl", False),
    ("h100nvl", "h100-nvl", False),
    ("H200 SXM 141GB", "h200-sxm", False),
    ("H200 NVL", "h200-nvl", False),
    ("GH200 96GB", "gh200-96gb", False),
    ("GH200 144GB", "gh200-144gb", False),
    ("GH200 141GB HBM3e", "gh200-144gb", False),
    ("gh200 144g hbm3e", "gh200-144gb", False),
    ("B200 180GB", "b200", False),
    ("B200 192GB", "b200", False),
    ("HGX B200", "b200", False),
    ("b200-sxm", "b200", False),
    ("GB200 NVL72", "gb200", False),
    ("A100 SXM4 80GB", "a100-sxm-80gb", False),
    ("A100 80GB SXM", "a100-sxm-80gb", False),
    ("A100 SXM 80GB (330W power limit)", "a100-sxm-80gb", False),
    ("A100-PCIe-80GB", "a100-pcie-80gb", False),
    ("A100 40GB PCIe", "a100-pcie-40gb", False),
    ("L40S 48GB", "l40s", False),
    ("l40s", "l40s", False),
    ("L4 24GB", "l4", False),
    ("RTX 4090", "rtx-4090", False),
    ("4090", "rtx-4090", False),
    ("3090", "rtx-3090", False),
    ("MI300X", "mi300x", False),
    ("mi325x", "mi325x", False),
    ("h100-sxm", "h100-sxm", False),
    ("a100-sxm-80gb", "a100-sxm-80gb", False),
    # bare product names: a stated default
    ("H100", "h100-sxm", True),
    ("NVIDIA H100 80GB", "h100-sxm", True),
    ("H200", "h200-sxm", True),
    ("H200 141GB HBM3e", "h200-sxm", True),
    ("GH200", "gh200-96gb", True),
    ("A100", "a100-sxm-80gb", True),
    ("A100 (variant not stated)", "a100-sxm-80gb", True),
    ("a100-80gb", "a100-sxm-80gb", True),
    ("A100 40GB", "a100-sxm-40gb", True),
    ("mi300", "mi300x", True),
]

MODEL_SPELLINGS = [
    ("Llama 3.1 8B", "llama-3.1-8b"),
    ("llama3.1-8b", "llama-3.1-8b"),
    ("llama-3.1-8b", "llama-3.1-8b"),
    ("Llama-3.1-8B", "llama-3.1-8b"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("meta-llama/Meta-Llama-3.1-8B", "llama-3.1-8b"),
    ("Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("Llama-3-8B", "llama-3.1-8b"),
    ("Llama 3.1 70B", "llama-3.1-70b"),
    ("Llama-3.1-70B-Instruct", "llama-3.1-70b"),
    ("nvidia/Llama-3.1-70B-Instruct-FP8", "llama-3.1-70b-fp8"),
    ("Llama 3.3 70B", "llama-3.3-70b"),
    ("Llama-3.3-70B-Instruct", "llama-3.3-70b"),
    ("nvidia/Llama-3.3-70B-Instruct-FP8", "llama-3.3-70b"),
    ("Llama 3.1 405B", "llama-3.1-405b"),
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b-fp8"),
    ("nvidia/Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b"),
    ("Llama 4 Scout", "llama-4-scout-17b-16e"),
    ("Llama-4-Scout-17B-16E-Instruct", "llama-4-scout-17b-16e"),
    ("Llama 4 Maverick", "llama-4-maverick-17b-128e"),
    ("Qwen3-235B-A22B", "qwen3-235b-a22b"),
    ("Qwen/Qwen3-235B-A22B-FP8", "qwen3-235b-a22b-fp8"),
    ("nvidia/Qwen3-235B-A22B-FP8", "qwen3-235b-a22b"),
    ("qwen3 8b", "qwen3-8b"),
    ("Qwen2.5-7B-Instruct", "qwen2.5-7b"),
    ("Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("mixtral 8x22b", "mixtral-8x22b"),
    ("Mistral-7B-Instruct-v0.3", "mistral-7b"),
    ("gemma-2-9b-it", "gemma-2-9b"),
    ("GPT-J-6B", "gpt-j-6b"),
    ("Falcon-180B", "falcon-180b"),
    ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
    ("kimi k2", "kimi-k2"),
    ("openai/gpt-oss-120b", "gpt-oss-120b"),
    ("phi-3-mini-4k-instruct", "phi-3-mini-4k"),
]

PRECISION_SPELLINGS = [
    ("bf16", "bf16"),
    ("BF16 (Base)", "bf16"),
    ("bfloat16", "bf16"),
    ("FP16", "fp16"),
    ("float16", "fp16"),
    ("half", "fp16"),
    ("FP8", "fp8"),
    ("fp8_e4m3", "fp8"),
    ("FP8 (nvidia/Llama-3.3-70B-Instruct-FP8)", "fp8"),
    ("W8A8-FP8", "fp8"),
    ("FP8-dynamic", "fp8"),
    ("W8A8", "w8a8-int8"),
    ("W8A8-INT8", "w8a8-int8"),
    ("SmoothQuant", "w8a8-int8"),
    ("int8 weight-only", "int8"),
    ("W8A16", "int8"),
    ("INT8", "int8"),
    ("W4A16", "int4"),
    ("AWQ", "int4"),
    ("GPTQ", "int4"),
    ("INT4-AWQ", "int4"),
    ("int4 weight-only G=32", "int4-g32"),
    ("NVFP4", "nvfp4"),
    ("FP4", "nvfp4"),
    ("MXFP4", "mxfp4"),
]

KV_SPELLINGS = [
    ("FP8 (doc: FP8 quantization sets FP8 KV cache)", "fp8"),
    ("fp8_e5m2", "fp8"),
    ("FP16", "fp16"),
    ("bfloat16", "bf16"),
    ("int8", "int8"),
    ("NVFP4", "nvfp4"),
]

ENGINE_SPELLINGS = [
    ("vLLM", "", "vllm"),
    ("vllm", "0.11.0", "vllm"),
    ("vLLM", "0.5.3", "vllm-v0"),
    ("SGLang", "", "sglang"),
    ("TensorRT-LLM (TensorRT engine; trtllm-bench throughput)", "0.17", "trtllm"),
    ("TensorRT-LLM (PyTorch backend; trtllm-bench throughput)", "1.0", "trtllm-pytorch"),
    ("TensorRT-LLM", "1.1", "trtllm-pytorch"),
    ("TensorRT-LLM (static batching, gptSessionBenchmark)", "0.6.1", "trtllm-static"),
    ("TensorRT-LLM + Triton tensorrtllm_backend", "0.14.0", "triton-trtllm"),
    ("Triton", "", "triton-trtllm"),
    ("NIM", "", "trtllm"),
    ("gpt-fast (PyTorch, torch.compile)", "", "gpt-fast"),
    ("llama.cpp", "", "llama.cpp"),
    ("llama-server", "", "llama.cpp"),
]


def test_the_table_holds_over_a_hundred_spellings() -> None:
    total = len(GPU_SPELLINGS) + len(MODEL_SPELLINGS) + len(PRECISION_SPELLINGS) + len(KV_SPELLINGS)
    assert total + len(ENGINE_SPELLINGS) >= 100


@pytest.mark.parametrize(("spelling", "gpu_id", "defaulted"), GPU_SPELLINGS)
def test_gpu_spellings(spelling: str, gpu_id: str, defaulted: bool) -> None:
    gpu, note = resolve_gpu(spelling)
    assert gpu.id == gpu_id
    assert bool(note) == defaulted, note
    if defaulted:
        assert gpu_id in note and "taken as" in note


@pytest.mark.parametrize(("spelling", "name"), MODEL_SPELLINGS)
def test_model_spellings(spelling: str, name: str) -> None:
    found = resolve_catalog_name(spelling)
    assert found is not None and found.key == name
    assert load_model(spelling).name == name


@pytest.mark.parametrize(("spelling", "name"), PRECISION_SPELLINGS)
def test_precision_spellings(spelling: str, name: str) -> None:
    assert get_precision(spelling).name == name


@pytest.mark.parametrize(("spelling", "name"), KV_SPELLINGS)
def test_kv_spellings(spelling: str, name: str) -> None:
    assert get_kv_dtype(spelling).name == name


@pytest.mark.parametrize(("spelling", "version", "name"), ENGINE_SPELLINGS)
def test_engine_spellings(spelling: str, version: str, name: str) -> None:
    assert resolve_engine(spelling, version)[0].name == name


@pytest.mark.parametrize(
    "spelling",
    ["GH200", "NVIDIA GH200 480GB", "gh200 144g hbm3e"],
)
def test_gh200_never_becomes_h200(spelling: str) -> None:
    assert resolve_gpu(spelling)[0].product == "gh200"


def test_neighbours_stay_apart() -> None:
    assert resolve_gpu("L4")[0].id == "l4" and resolve_gpu("L40S")[0].id == "l40s"
    assert resolve_gpu("GB200")[0].id == "gb200" and resolve_gpu("B200")[0].id == "b200"
    assert resolve_catalog_name("qwen3 8b").key == "qwen3-8b"  # type: ignore[union-attr]
    assert resolve_catalog_name("Llama 3.1 70B").key == "llama-3.1-70b"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("L40", "L40 is not in the catalog"),
        ("NVIDIA A10G", "A10G is not in the catalog"),
        ("H100 40GB", "no H100 with 40 GB"),
        ("H200 131GB HBM3", "no H200"),
        ("h1000-sxm", "unknown GPU"),
    ],
)
def test_unknown_gpus_are_refused_with_the_reason(spelling: str, expected: str) -> None:
    with pytest.raises(UnknownGpuError, match=expected):
        resolve_gpu(spelling)


def test_ambiguous_names_list_the_candidates() -> None:
    with pytest.raises(AmbiguousNameError, match=r"llama-3\.1-405b, llama-3\.1-70b, llama-3\.1-8b"):
        resolve_catalog_name("llama 3.1")
    with pytest.raises(AmbiguousNameError, match="could mean"):
        resolve_gpu("GH200 (H100/H200 GPU)")


def test_unknown_names_of_other_kinds() -> None:
    assert resolve_catalog_name("meta-llama/Llama-3.2-3B") is None  # 3.2-1B is catalogued, 3B is not
    with pytest.raises(InputError, match="unknown precision"):
        get_precision("int3")
    with pytest.raises(InputError, match="unknown engine"):
        resolve_engine("TGI")
