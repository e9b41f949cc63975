"""sresformer: SpikingResformer from PyTorch training to a Loihi-style chip."""

from .attention import DSSA, calibrate_firing_rates
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .errors import CheckpointError, UncalibratedError, UnknownModelError, UserError
from .model import SpikingResformer
from .registry import create_model, list_models, model_info, register_model

__all__ = [
    "DSSA", "SpikingResformer", "calibrate_firing_rates", "create_model", "list_models", "model_info",
    "register_model", "save_checkpoint", "load_checkpoint", "read_checkpoint", "UserError",
    "CheckpointError", "UncalibratedError", "UnknownModelError",
]
__version__ = "0.1.0"
