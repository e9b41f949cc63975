"""Helpers shared by the CLI commands: loading a model from a checkpoint or a NIR file."""

from __future__ import annotations

from pathlib import Path

from sresformer.errors import UserError


def load_model_source(path: str):
    """A runnable eval-mode model from ``CKPT`` (our checkpoint) or ``MODEL.nir`` (any supported NIR graph)."""
    p = Path(path)
    if p.suffix == ".net":
        raise UserError(f"{path} is a lava-dl netx network (integers for the chip, no float model): use "
                        "'sresformer export --target loihi', 'simulate' or 'energy' on it")
    if p.suffix == ".nir":
        try:
            from exporters.nir import load_for_eval
        except ImportError:
            raise UserError("reading .nir files needs the exporters.nir package") from None
        return load_for_eval(p)
    from sresformer.checkpoint import load_checkpoint
    return load_checkpoint(p)


def masked_source(path: str, spike_mask: str | None, tmp: str) -> str:
    """``path`` with ``--spike-mask`` applied: a masked copy of the checkpoint or NIR file in ``tmp``.

    None leaves ``path`` as it is (a checkpoint keeps the mask it was trained with). A
    checkpoint's stored mask is replaced (ratio 0 removes it); a NIR file gets gates
    inserted (:func:`exporters.nir.masking.mask_graph`; refused if it already has some).
    """
    if spike_mask is None:
        return path
    from sresformer.masking import parse_spec

    spec = parse_spec(spike_mask)
    p = Path(path)
    out = Path(tmp) / (p.stem + ".masked" + p.suffix)
    if p.suffix == ".nir":
        from exporters.nir.export import write_graph
        from exporters.nir.load import read_graph
        from exporters.nir.masking import mask_graph

        write_graph(mask_graph(read_graph(p), spec), out)
        return str(out)
    from sresformer.checkpoint import load_checkpoint, save_checkpoint
    from sresformer.masking import apply_spike_mask

    model = load_checkpoint(p)
    apply_spike_mask(model, spec)
    save_checkpoint(model, out, **getattr(model, "checkpoint_meta", {}))
    return str(out)
