"""Disaggregated prefill/decode as a deployment (:class:`Disaggregated`): a prefill pool and a
decode pool, each a :class:`~inferplan.specs.deployment.Deployment` with its own GPU, TP and
replicas (``parallelism.dp``), and the link each request's KV cache crosses between them.

How the KV transfer overlaps the prefill depends on the engine's connector (``overlap``):

* ``none``: the decode instance pulls the KV once the whole prefill is done (vLLM's
  NixlConnector: the proxy sends the request to the decode instance after the prefill instance
  answered; LMCacheConnectorV1 stores after the forward pass unless configured layer-wise);
* ``chunk``: each prefill chunk's KV is sent as soon as that chunk is computed (SGLang's
  disaggregation sends the KV of every chunk of a chunked prefill);
* ``layer``: each layer's KV is sent as soon as that layer is computed (layer-wise connectors,
  e.g. Mooncake's layer-wise prefill; give it explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.specs.deployment import Deployment
from inferplan.specs.hardware import LinkSpec, get_link

__all__ = ["CONNECTORS", "DEFAULT_KV_LINK", "OVERLAPS", "Disaggregated", "default_connector", "default_overlap"]

#: The link between the pools when none is named: one 400 Gb/s InfiniBand NIC per GPU (DGX H100).
DEFAULT_KV_LINK = "ib-ndr"
OVERLAPS = ("none", "chunk", "layer")
#: KV connectors (vLLM's kv_connector) or transfer backends (SGLang's) each engine can be given.
CONNECTORS = {"vllm": ("NixlConnector", "LMCacheConnectorV1"), "sglang": ("mooncake", "nixl")}


def default_connector(engine: str) -> str:
    """vLLM: NixlConnector; SGLang: mooncake (its default transfer backend)."""
    if engine not in CONNECTORS:
        raise InputError(
            f"disaggregated serving is modelled for vllm and sglang, not '{engine}': use --engine vllm or sglang"
        )
    return CONNECTORS[engine][0]


def default_overlap(engine: str) -> str:
    """How the engine overlaps the KV transfer with the prefill (see the module docstring)."""
    return "chunk" if engine == "sglang" else "none"


@dataclass(frozen=True, slots=True)
class Disaggregated:
    """A prefill pool and a decode pool. Both serve the same model with the same KV-cache dtype
    (the decode pool reads the prefill pool's KV bytes as they are) on the same engine."""

    prefill: Deployment
    decode: Deployment
    kv_link_id: str = DEFAULT_KV_LINK
    connector: str | None = None
    overlap: str | None = None

    def __post_init__(self) -> None:
        p, d = self.prefill, self.decode
        if p.model.name != d.model.name:
            raise InputError("the prefill and decode pools must serve the same model")
        if p.kv_dtype.name != d.kv_dtype.name:
            raise InputError(
                f"the prefill pool's KV cache is {p.kv_dtype.name} and the decode pool's {d.kv_dtype.name}: "
                "the KV crosses as it is, so both need the same --kv-dtype"
            )
        if p.engine.name != d.engine.name:
            raise InputError("the prefill and decode pools must run the same engine")
        default_connector(p.engine.name)  # refuses engines without disaggregated serving
        if self.overlap is not None and self.overlap not in OVERLAPS:
            raise InputError(f"--kv-overlap must be one of {', '.join(OVERLAPS)}; got {self.overlap!r}")
        if self.connector is not None and self.connector not in CONNECTORS.get(p.engine.name, ()):
            known = ", ".join(CONNECTORS.get(p.engine.name, ())) or "none"
            raise InputError(f"--kv-connector '{self.connector}' is not one {p.engine.name} takes: {known}")
        get_link(self.kv_link_id)

    @property
    def kv_link(self) -> LinkSpec:
        return get_link(self.kv_link_id)

    @property
    def engine_connector(self) -> str:
        return self.connector or default_connector(self.prefill.engine.name)

    @property
    def overlap_mode(self) -> str:
        return self.overlap or default_overlap(self.prefill.engine.name)

    @property
    def prefill_replicas(self) -> int:
        return self.prefill.parallelism.dp

    @property
    def decode_replicas(self) -> int:
        return self.decode.parallelism.dp

    @property
    def num_gpus(self) -> int:
        return self.prefill.num_gpus + self.decode.num_gpus

    def with_replicas(self, prefill: int, decode: int) -> Disaggregated:
        return Disaggregated(
            self.prefill.with_replicas(prefill),
            self.decode.with_replicas(decode),
            self.kv_link_id,
            self.connector,
            self.overlap,
        )

    def label(self) -> str:
        """e.g. '2P x (h100-sxm TP4 fp8/fp8-kv) + 3D x (h100-sxm TP4 fp8/fp8-kv) over ib-ndr'."""
        return (
            f"{self.prefill_replicas}P x ({self.prefill.label()}) + {self.decode_replicas}D x "
            f"({self.decode.label()}) over {self.kv_link_id}"
        )

    def key(self) -> tuple[object, ...]:
        return (self.prefill.key(), self.decode.key(), self.kv_link_id, self.connector, self.overlap)
