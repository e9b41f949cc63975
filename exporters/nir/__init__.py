"""NIR export and import (NIR 1.0, HDF5 files; see FORMAT.md in this folder).

- :func:`export` writes a SpikingResformer (or a chain of simple spiking modules) as a
  ``.nir`` file; :func:`model_to_nir` / :func:`export_graph` build the graph in memory.
- :func:`load` runs any NIR graph made of the supported nodes (ours or a third party's):
  ``[T, B, *input_shape] -> [T, B, *output_shape]``.
- :func:`load_for_eval` wraps one as a classifier ``[B, C, H, W] -> logits [B, K]``.
"""

from .convention import NIRError
from .export import export, export_graph, model_to_nir, write_graph
from .load import load, load_for_eval, read_graph

__all__ = ["NIRError", "export", "export_graph", "model_to_nir", "write_graph", "load", "load_for_eval", "read_graph"]
