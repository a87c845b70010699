"""Find a model: a catalog name, a ``config.json`` path, a local model folder or a hub id.

The catalog lives in ``inferplan/data/models/NAME.json``: the published ``config.json``
of each model with its Hugging Face id, its source and its published parameter counts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from inferplan.errors import ConfigError, OfflineError, UnknownModelError
from inferplan.specs.config_reader import decode_utf8, parse_json_text, read_json_file
from inferplan.specs.hf_config import spec_from_config
from inferplan.specs.model import ModelSpec
from inferplan.specs.names import Resolved, resolve_model_name

__all__ = [
    "CatalogModel",
    "catalog_models",
    "load_catalog_model",
    "load_model",
    "model_from_config_text",
    "parse_json_text",
    "parse_param_count",
    "resolve_catalog_name",
]


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    hf_id: str
    config_source: str
    published_total: str | None
    published_active: str | None
    published_source: str
    config: dict[str, Any]
    published_meta: dict[str, str]


def parse_param_count(text: str) -> tuple[float, float]:
    """'8.03B' -> (8.03e9, half a unit of the last digit = 0.005e9)."""
    match = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?([MBT])", text.strip())
    if not match:
        raise ConfigError(f"published parameter count '{text}' must look like 8.03B, 494M or 1T")
    whole, frac, unit = match.groups()
    scale = {"M": 1e6, "B": 1e9, "T": 1e12}[unit]
    value = float(f"{whole}.{frac or '0'}") * scale
    return value, 0.5 * scale * 10.0 ** (-len(frac or ""))


def _read_json(path: Path) -> Any:
    """A config file, decoded strictly (UTF-8, bounded size, no NaN; see specs.config_reader)."""
    return read_json_file(path)


@cache
def catalog_models() -> dict[str, CatalogModel]:
    """Every catalog model by name."""
    out: dict[str, CatalogModel] = {}
    folder = resources.files("inferplan") / "data" / "models"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        origin = f"catalog file {entry.name}"
        doc = parse_json_text(decode_utf8(entry.read_bytes(), origin), origin)
        pub = doc.get("published") or {}
        out[doc["name"]] = CatalogModel(
            name=doc["name"],
            hf_id=doc["hf_id"],
            config_source=doc["config_source"],
            published_total=pub.get("total_params"),
            published_active=pub.get("active_params"),
            published_source=pub.get("source", ""),
            config=doc["config"],
            published_meta={k: v for k, v in pub.items() if k in ("kind", "active_kind", "active_convention", "scope")},
        )
    return out


def resolve_catalog_name(name: str) -> Resolved | None:
    """The catalog model a name means ('Llama 3.1 8B', 'llama3.1-8b', a hub id of the model or of
    an instruct variant), with the resolver's note; None when it names none
    (:func:`inferplan.specs.names.resolve_model_name`)."""
    return resolve_model_name(name, {n: m.hf_id for n, m in catalog_models().items()})


def _from_catalog(found: Resolved) -> ModelSpec:
    hit = catalog_models()[found.key]
    spec = replace(spec_from_config(hit.config, hit.name, f"catalog:{hit.name}"), source=hit.config_source)
    return replace(spec, notes=(*spec.notes, found.note)) if found.note else spec


def load_catalog_model(name: str) -> ModelSpec:
    """A catalog model by any name the resolver reads; never a file, folder or download (for the web UI)."""
    found = resolve_catalog_name(name)
    if found is None:
        raise UnknownModelError(name, catalog_models())
    return _from_catalog(found)


def model_from_config_text(text: str, name: str = "pasted-model") -> ModelSpec:
    """A model from the text of a ``config.json`` (pasted into the web UI)."""
    origin = "the pasted config.json"
    return spec_from_config(parse_json_text(text, origin), name, origin)


def load_model(ref: str, *, allow_hub: bool = True) -> ModelSpec:
    """Resolve ``ref`` into a ModelSpec.

    Order: catalog name or hub id of a catalog model; a ``config.json`` file; a folder
    holding ``config.json`` (its safetensors headers give exact counts and dtypes, see
    :mod:`inferplan.specs.checkpoint`); any other way of writing a catalog model's name
    (:mod:`inferplan.specs.names`); else a hub id fetched through ``huggingface_hub``.
    """
    low = ref.strip().lower()
    models = catalog_models()
    if low in models or any(low == m.hf_id.lower() for m in models.values()):
        return load_catalog_model(ref)
    path = Path(ref).expanduser()
    kind = _path_kind(path)
    if kind == "file":
        return spec_from_config(_read_json(path), path.parent.name or path.stem, str(path))
    if kind == "folder":
        return _load_folder(path)
    found = resolve_catalog_name(ref)
    if found is not None:
        return _from_catalog(found)
    if ref.endswith(".json") or (os.sep in ref and not re.fullmatch(r"[\w.-]+/[\w.-]+", ref)):
        raise ConfigError(f"no such file or folder: {ref}")
    if allow_hub and re.fullmatch(r"[\w.-]+/[\w.-]+", ref):
        return _load_hub(ref)
    raise UnknownModelError(ref, catalog_models())


def _path_kind(path: Path) -> str | None:
    """'file', 'folder' or None (nothing there, or no path at all: too long for the system)."""
    try:
        return "file" if path.is_file() else "folder" if path.is_dir() else None
    except (OSError, ValueError):
        return None


def _load_folder(path: Path) -> ModelSpec:
    from inferplan.specs.checkpoint import read_checkpoint

    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"{path}: no config.json in this folder; pass a model folder or a config file")
    spec = spec_from_config(_read_json(config), path.name, str(config))
    checkpoint = read_checkpoint(path)
    if checkpoint is None:
        return spec
    note = (
        f"checkpoint: {checkpoint.num_params:,} parameters in {checkpoint.num_files} "
        f"safetensors file(s), dtypes {', '.join(sorted(checkpoint.dtypes))}"
    )
    return replace(spec, notes=(*spec.notes, note))


def _load_hub(repo_id: str) -> ModelSpec:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise OfflineError(
            f"'{repo_id}' is not in the catalog and huggingface_hub is not installed; "
            "pip install 'inferplan[hub]' or pass a local config.json"
        ) from exc
    try:
        local = hf_hub_download(repo_id, "config.json")
    except Exception as exc:
        raise OfflineError(
            f"could not fetch config.json of '{repo_id}' from the hub ({type(exc).__name__}); "
            "check the network or pass a local config.json"
        ) from exc
    return spec_from_config(_read_json(Path(local)), repo_id.rsplit("/", maxsplit=1)[-1], repo_id)
