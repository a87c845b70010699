"""inferplan: size, predict, plan, cost and measure LLM inference deployments."""

from inferplan.errors import InferplanError
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.model_catalog import load_model

__all__ = ["InferplanError", "ModelSpec", "count_params", "load_model"]
__version__ = "0.1.0"
