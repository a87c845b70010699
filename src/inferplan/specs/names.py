"""One resolver for the names people and tools write: GPUs, models, precisions, KV dtypes, engines.

Every entry point (CLI, web, ``validate``, price files, calibration profiles) reaches these
functions through :func:`~inferplan.specs.hardware.get_gpu`, :func:`~inferplan.specs.model_catalog.load_model`,
:func:`~inferplan.specs.precision.get_precision` and :func:`~inferplan.specs.engines.get_engine`.

Rules (the same for every kind of name):

* a name is compared by its words, never by substrings: 'GH200' never becomes 'H200', 'L4' never
  'L40S', '8b' never '80b';
* words the resolver does not know are ignored ('(DGX H100)', '330W power limit');
* a name that could mean several things resolves to a stated default and the :class:`Resolved`
  says which (its ``note``), or it is refused with the candidates (:class:`AmbiguousNameError`);
* GPUs: the product word (h100, gh200, mi300x, 4090) and then the variant words (sxm, pcie, nvl),
  the memory (80gb, 144g, 81559 MiB) and the memory type (hbm3 vs hbm2e) narrow the catalog's
  variants; exact tool strings ('NVIDIA GH200 480GB') are the catalog's aliases;
* models: words after dropping the hub organisation, 'instruct'/'chat'/'it' (variants share the
  base's shape) and version tags; a quantisation word (fp8, awq, ...) selects a catalog
  checkpoint when there is one, else the base model with a precision hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferplan.errors import AmbiguousNameError, InputError, UnknownGpuError

__all__ = [
    "GpuName",
    "Resolved",
    "model_words",
    "normalize",
    "resolve_engine_name",
    "resolve_gpu_name",
    "resolve_kv_name",
    "resolve_model_name",
    "resolve_precision_name",
]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The catalog key a name resolves to; ``note`` says what was assumed (empty: nothing).
    ``hint`` carries a second finding, e.g. the precision a checkpoint's name states."""

    key: str
    note: str = ""
    hint: str = ""


def normalize(text: str) -> str:
    """Lower case, every run of characters other than letters, digits and dots one space."""
    return " ".join(re.split(r"[^a-z0-9.]+", text.lower())).strip()


# -- GPUs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuName:
    """What the GPU resolver needs to know of one catalog entry."""

    id: str
    name: str
    product: str
    variant: str | None
    memory_gib: float
    memory_type: str
    aliases: tuple[str, ...] = ()
    default_variant: bool = False


_FORMS = {
    "sxm": "sxm",
    "sxm2": "sxm",
    "sxm4": "sxm",
    "sxm5": "sxm",
    "sxm6": "sxm",
    "hgx": "sxm",
    "dgx": "sxm",
    "pcie": "pcie",
    "pci": "pcie",
    "nvl": "nvl",
    "oam": "oam",
}
_MEMORY_TYPES = ("hbm2", "hbm2e", "hbm3", "hbm3e", "gddr6", "gddr6x", "gddr7")
#: Products people name that the catalog does not hold: refused with a clear message, never
#: matched to a neighbour.
_NOT_CATALOGUED = frozenset(
    [
        "a10",
        "a10g",
        "a16",
        "a2",
        "a30",
        "a40",
        "a800",
        "h20",
        "h800",
        "l40",
        "l20",
        "t4",
        "v100",
        "p100",
        "k80",
        "gb300",
        "mi210",
        "mi250",
        "mi250x",
        "mi300a",
        "mi350x",
        "5090",
        "4080",
        "3080",
        "6000",
    ]
)
#: Family names that mean one catalogued product.
_FAMILIES = {"mi300": ("mi300x", "MI300 is the MI300X here (the MI300A APU is not catalogued)")}
#: Relative difference allowed between a memory size in a name and a catalog variant's
#: (B200 is sold as 192 GB and catalogued at its usable 180; H200 appears as 141, 143 and 131).
_MEMORY_TOLERANCE = 0.08


def _memory_words(words: list[str]) -> list[float]:
    """Memory sizes a name states, in GiB-like units: '80gb', '144g', '81559 mib', '94 gb'."""
    found = []
    for i, w in enumerate(words):
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(gb|g|gib)", w)
        if m:
            found.append(float(m.group(1)))
            continue
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if re.fullmatch(r"\d+(?:\.\d+)?", w) and nxt in ("gb", "gib", "g"):
            found.append(float(w))
        elif re.fullmatch(r"\d+", w) and nxt == "mib":
            found.append(int(w) / 1024.0)
        elif m := re.fullmatch(r"(\d+)mib", w):
            found.append(int(m.group(1)) / 1024.0)
    return found


def _products(words: list[str], products: set[str]) -> list[tuple[str, list[str]]]:
    """(product, extra words) for every word that names a product, alone or glued to a variant
    word ('h100sxm', 'h100nvl')."""
    out: list[tuple[str, list[str]]] = []
    for w in words:
        if w in products:
            out.append((w, []))
            continue
        for p in products:
            rest = w[len(p) :]
            if w.startswith(p) and rest and (rest in _FORMS or rest in _MEMORY_TYPES or _memory_words([rest])):
                out.append((p, [rest]))
    return out


def _gpu_by_words(text: str, entries: Sequence[GpuName]) -> Resolved:
    words = normalize(text).split()
    products = {e.product for e in entries if e.product}
    found = _products(words, products)
    named = list(dict.fromkeys(p for p, _ in found))
    if not named:
        family = next((_FAMILIES[w] for w in words if w in _FAMILIES), None)
        if family is not None:
            found_id, why = family
            return Resolved(found_id, f"'{text}' taken as {found_id}: {why}")
        uncatalogued = [w for w in words if w in _NOT_CATALOGUED]
        detail = f"{uncatalogued[0].upper()} is not in the catalog." if uncatalogued else ""
        raise UnknownGpuError(text, [e.id for e in entries], detail)
    if len(named) > 1:
        raise AmbiguousNameError("GPU", text, [e.id for e in entries if e.product in named])
    product = named[0]
    words = words + [x for _, extra in found for x in extra]
    variants = [e for e in entries if e.product == product]
    said = []
    forms = {_FORMS[w] for w in words if w in _FORMS}
    if forms:
        variants = [e for e in variants if e.variant in forms]
        said.append("/".join(sorted(forms)))
    types = {w for w in words if w in _MEMORY_TYPES}
    if types:
        variants = [e for e in variants if e.memory_type in types]
        said.append("/".join(sorted(types)))
    for size in _memory_words(words):
        near = [e for e in variants if abs(e.memory_gib - size) <= _MEMORY_TOLERANCE * e.memory_gib]
        variants = near
        said.append(f"{size:g} GB")
    every = [e.id for e in entries if e.product == product]
    if not variants:
        what = ", ".join(said)
        raise UnknownGpuError(text, every, f"The catalog has no {product.upper()} with {what}.")
    if len(variants) == 1:
        return Resolved(variants[0].id)
    chosen = next((e for e in variants if e.default_variant), None) or next(
        (e for e in variants if e.variant == "sxm"), None
    )
    if chosen is None:
        raise AmbiguousNameError("GPU", text, [e.id for e in variants])
    others = ", ".join(e.id for e in variants if e is not chosen)
    return Resolved(chosen.id, f"'{text}' taken as {chosen.id} ({chosen.name}); other variants: {others}")


def resolve_gpu_name(text: str, entries: Sequence[GpuName]) -> Resolved:
    """The catalog id a GPU name means: an id, an alias (a tool's exact device name), or the
    product and variant words (see the module docstring)."""
    norm = normalize(text)
    if not norm:
        raise InputError("a GPU name is empty; give a catalog id such as h100-sxm ('inferplan gpus' lists them)")
    for e in entries:
        if norm == normalize(e.id) or norm == normalize(e.name) or norm in (normalize(a) for a in e.aliases):
            return Resolved(e.id)
    return _gpu_by_words(text, entries)


# -- models ----------------------------------------------------------------------------------

_DROP = {"instruct", "chat", "it", "hf", "base", "pretrained", "model"}
_QUANT_WORDS = {
    "fp8": "fp8",
    "fp8dynamic": "fp8",
    "dynamic": "",
    "awq": "int4",
    "gptq": "int4",
    "int4": "int4",
    "w4a16": "int4",
    "int8": "int8",
    "w8a16": "int8",
    "w8a8": "w8a8-int8",
    "nvfp4": "nvfp4",
    "fp4": "nvfp4",
    "mxfp4": "mxfp4",
    "quantized": "",
    "kv": "",
}
#: Names that share a catalog model's shapes exactly, with what differs (stated in the note).
_SAME_SHAPE = {
    ("llama", "3", "8b"): ("llama-3.1-8b", "Llama-3-8B has Llama-3.1-8B's shapes (its context is 8,192 tokens)"),
    ("llama", "3", "70b"): ("llama-3.1-70b", "Llama-3-70B has Llama-3.1-70B's shapes (its context is 8,192 tokens)"),
}


def model_words(text: str) -> tuple[str, ...]:
    """A model name as words: hub organisation, 'instruct'-like words and version tags dropped,
    family names split from their version ('llama3.1' -> llama 3.1, 'qwen3' -> qwen 3)."""
    name = text.strip().lower().split("/")[-1]
    out: list[str] = []
    for w in re.split(r"[^a-z0-9.]+", name):
        m = re.fullmatch(r"([a-z]{3,})(\d+(?:\.\d+)?)", w)
        out += [m.group(1), m.group(2)] if m else [w]
    words = [w for w in out if w and w not in _DROP and not re.fullmatch(r"v\d+\.\d+", w)]
    if len(words) > 1 and words[0] == "meta" and words[1] == "llama":
        words = words[1:]
    return tuple(words)


def _split_quant(words: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    base = tuple(w for w in words if w not in _QUANT_WORDS)
    hints = [_QUANT_WORDS[w] for w in words if _QUANT_WORDS.get(w)]
    return base, (hints[0] if hints else "")


def resolve_model_name(text: str, catalog: Mapping[str, str]) -> Resolved | None:
    """The catalog name ``text`` means (``catalog``: name -> hub id), or None when it names no
    catalog model (the caller then tries files and the hub). Ambiguous names are refused."""
    low = text.strip().lower()
    for name, hf_id in catalog.items():
        if low in (name, hf_id.lower()):
            return Resolved(name)
    words = model_words(text)
    org = low.split("/")[0] if "/" in low else ""
    keys = {name: model_words(name) for name in catalog}
    for name in (n for n, k in keys.items() if k == words):
        same_publisher = not org or catalog[name].lower().startswith(org + "/")
        if not _split_quant(keys[name])[1] or same_publisher:
            return Resolved(name)
    base, hint = _split_quant(words)
    if base in _SAME_SHAPE:
        key, why = _SAME_SHAPE[base]
        return Resolved(key, why, hint)
    if len(base) < 2:
        return None
    plain = {n: k for n, k in keys.items() if not _split_quant(k)[1]}
    same = [n for n, k in plain.items() if k == base]
    wider = [n for n, k in plain.items() if set(base) <= set(k)]
    found = same or wider
    if not found:
        return None
    if len(found) > 1:
        raise AmbiguousNameError("model", text, sorted(found))
    note = f"'{text}' taken as {found[0]}"
    if hint:
        note += f" (the checkpoint's {hint.upper()} is a precision: the base model's shapes are used)"
    return Resolved(found[0], note, hint)


# -- precisions and KV dtypes ---------------------------------------------------------------

_PRECISION_RULES: tuple[tuple[str, str, str], ...] = (
    # (regex over the normalized words, precision, note when chosen)
    (r"\bnvfp4\b", "nvfp4", ""),
    (r"\bmxfp4\b", "mxfp4", ""),
    (r"\bfp4\b|\bfloat4\b|\be2m1\b", "nvfp4", "FP4 taken as NVFP4 (E2M1 with an FP8 scale per 16 values)"),
    (r"\bw4a16\b|\bawq\b|\bgptq\b|\bint4\b|\b4.?bit\b|\bw4\b", "int4", ""),
    (r"\bw8a8\b.*\bfp8\b|\bfp8\b.*\bw8a8\b", "fp8", ""),
    (r"\bw8a8\b.*\bint8\b|\bint8\b.*\bw8a8\b|\bsmoothquant\b|\bsq\b", "w8a8-int8", ""),
    (r"\bw8a8\b", "w8a8-int8", "W8A8 taken as INT8 weights and activations (say W8A8-FP8 for FP8)"),
    (r"\bfp8\b|\be4m3\b|\bfloat8\b|\bf8\b", "fp8", ""),
    (r"\bw8a16\b|\bint8\b|\b8.?bit\b", "int8", ""),
    (r"\bbf16\b|\bbfloat16\b", "bf16", ""),
    (r"\bfp16\b|\bfloat16\b|\bhalf\b|\bf16\b", "fp16", ""),
)


def resolve_precision_name(text: str) -> Resolved | None:
    """The weight precision a name states ('FP8 (nvidia/...-FP8)', 'int4 weight-only G=32',
    'W8A8', 'NVFP4'); None when it states none ('not stated', 'auto')."""
    norm = normalize(text)
    if not norm or norm in ("auto", "not stated", "not stated in table", "unknown", "default"):
        return None
    for pattern, name, note in _PRECISION_RULES:
        if re.search(pattern, norm):
            if name == "int4" and re.search(r"\bg\s*=?\s*32\b|\bg32\b|\bgroup.?size.?32\b|\bgs32\b", norm):
                return Resolved("int4-g32")
            if name == "int8" and "w8a8" not in norm and not re.search(r"weight|w8a16|wo\b|\bonly\b", norm):
                return Resolved("int8", "INT8 taken as weight-only (W8A16); say W8A8 for INT8 activations too")
            return Resolved(name, note)
    if norm in ("float32", "fp32", "f32"):
        return Resolved("fp32")
    return None


def resolve_kv_name(text: str) -> Resolved | None:
    """The KV-cache dtype a name states; None when it states none (the caller's policy decides)."""
    norm = normalize(text)
    if not norm or norm in ("auto", "not stated", "not stated in table", "unknown", "default"):
        return None
    for pattern, name in (
        (r"\bnvfp4\b|\bfp4\b", "nvfp4"),
        (r"\bfp8\b|\be4m3\b|\be5m2\b|\bfloat8\b", "fp8"),
        (r"\bint8\b", "int8"),
        (r"\bbf16\b|\bbfloat16\b", "bf16"),
        (r"\bfp16\b|\bfloat16\b|\bhalf\b", "fp16"),
        (r"\bfp32\b|\bfloat32\b", "fp32"),
    ):
        if re.search(pattern, norm):
            return Resolved(name)
    return None


# -- engines ---------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, int] | None:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _trtllm_profile(norm: str, version: tuple[int, int] | None) -> Resolved:
    if "triton" in norm:
        return Resolved("triton-trtllm")
    if "pytorch" in norm or (version is not None and version >= (1, 0)):
        return Resolved("trtllm-pytorch")
    if "static" in norm or "gptsession" in norm or (version is not None and version < (0, 10)):
        return Resolved("trtllm-static")
    return Resolved("trtllm")


def resolve_engine_name(text: str, version: str = "") -> Resolved:
    """The engine profile a name (and version) means: vLLM V1 or V0, SGLang, TensorRT-LLM's
    TensorRT engine, its PyTorch backend (1.0 on) or its static batching (before 0.10), Triton
    with TensorRT-LLM, NIM, gpt-fast, llama.cpp."""
    norm = normalize(text)
    v = _version(version) or _version(norm)
    if norm in ("vllm", "sglang", "trtllm", "triton-trtllm", "gpt-fast", "llama.cpp", "trtllm-pytorch"):
        return Resolved(norm) if not v else resolve_engine_name(norm + " " + ".".join(map(str, v)))
    compact = norm.replace(" ", "").replace("-", "")
    if "tensorrtllm" in compact or "trtllm" in compact or "trt" in norm.split():
        return _trtllm_profile(norm, v)
    if norm == "triton":
        return Resolved("triton-trtllm", "Triton taken as Triton Inference Server with the TensorRT-LLM backend")
    if "nim" in norm.split():
        return Resolved("trtllm", "NIM taken as its TensorRT-LLM engine (what NIM serves where it has a profile)")
    if "vllm" in compact:
        if v is not None and v < (0, 8):
            return Resolved("vllm-v0", "vLLM before 0.8 runs its V0 engine (more CPU time per step)")
        return Resolved("vllm")
    if "sglang" in compact:
        return Resolved("sglang")
    if "gptfast" in compact:
        return Resolved("gpt-fast")
    if "llama.cpp" in norm or "llamacpp" in compact or "llamaserver" in compact:
        return Resolved("llama.cpp")
    raise InputError(
        f"unknown engine '{text}'; known: vLLM, SGLang, TensorRT-LLM (TensorRT engine or PyTorch backend), "
        "Triton with TensorRT-LLM, NIM, gpt-fast, llama.cpp"
    )
