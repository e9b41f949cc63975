"""Turn a dataset spec string (the CLI's ``--data``) into a :class:`DatasetBundle`."""

from __future__ import annotations

from pathlib import Path

from .base import DataError, DatasetBundle, check_img_size, check_positive_int

#: The spec forms, in the order help texts list them.
SPEC_FORMS = ("digits", "synthetic", "cifar10:PATH", "cifar100:PATH", "folder:PATH", "frames:PATH.npz")
_PATH_KINDS = ("cifar10", "cifar100", "folder", "frames")
_PLAIN_KINDS = ("digits", "synthetic")


def list_datasets() -> list[str]:
    """The accepted spec forms, e.g. ``['digits', 'synthetic', 'cifar10:PATH', ...]``."""
    return list(SPEC_FORMS)


def _forms() -> str:
    return ", ".join(SPEC_FORMS)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``'kind:PATH'`` into ``(kind, path)``; ``'digits'`` gives ``('digits', None)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"no dataset given; use one of: {_forms()}")
    text = spec.strip()
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    if kind in _PLAIN_KINDS:
        if sep:
            raise DataError(f"dataset '{kind}' takes no path (got '{text}'); use '{kind}'")
        return kind, None
    if kind in _PATH_KINDS:
        path = path.strip()
        if not path:
            raise DataError(f"dataset '{kind}' needs a path: {kind}:PATH")
        return kind, path
    hint = ""
    if not sep and Path(text).expanduser().exists():
        hint = (f"; for a local path say what it holds, e.g. folder:{text}, cifar10:{text} "
                f"or frames:{text}")
    raise DataError(f"unknown dataset '{text}'; use one of: {_forms()}{hint}")


def open_dataset(spec: str, *, img_size: int | None = None, num_classes: int | None = None,
                 in_channels: int = 3, T: int | None = None, augment: bool = True,
                 seed: int = 0) -> DatasetBundle:
    """Open the dataset named by ``spec`` (one of :func:`list_datasets`' forms).

    ``img_size``: side in pixels of the square samples, or ``(H, W)`` (only synthetic makes
    non-square ones; others refuse them in one line) (None: the dataset's own,
    32 for digits / CIFAR / synthetic, 224 for an image folder, the file's H x W
    for frames). ``num_classes``: the model's number of outputs; it sets the class
    count of ``synthetic`` and is checked against the others (a dataset with more
    classes than the model has outputs is an error). ``in_channels``: channels of
    each sample (digits and synthetic take any count, a folder 1 or 3, CIFAR and
    frames 3). ``T``: time steps; only event frames carry their own T, and a
    different one is an error (static images are repeated over T by the model).
    ``augment``: random train-time augmentation (the test split never has any).
    ``seed``: varies only the synthetic images; every train/test split uses the
    fixed seed 0 so that training and evaluation always see the same split.
    Raises :class:`DataError` (one line) for anything the user can fix.
    """
    kind, path = parse_spec(spec)
    if isinstance(img_size, tuple):   # (H, W): a network with non-square inputs (lava-dl's PilotNet)
        height, width = (check_img_size(v) for v in img_size)
        if height != width and kind != "synthetic":
            raise DataError(f"dataset {kind} gives square images, the network expects {height} x {width}; "
                            "use --data synthetic for a shape-only run")
        img_size = (height, width) if height != width else height
    else:
        img_size = check_img_size(img_size)
    in_channels = check_positive_int(in_channels, "in_channels")
    if num_classes is not None:
        num_classes = check_positive_int(num_classes, "num_classes")
    if T is not None:
        T = check_positive_int(T, "T")
    if kind in ("cifar10", "cifar100") and in_channels != 3:
        raise DataError(f"CIFAR images have 3 channels, not in_channels={in_channels}; use a 3-channel model")

    if kind == "digits":
        from .digits import load_digits_dataset
        bundle = load_digits_dataset(img_size, in_channels, augment)
    elif kind == "synthetic":
        from .synthetic import load_synthetic
        bundle = load_synthetic(img_size, num_classes, in_channels, int(seed))
    elif kind == "cifar10":
        from .cifar import load_cifar10
        bundle = load_cifar10(path, img_size, augment)
    elif kind == "cifar100":
        from .cifar import load_cifar100
        bundle = load_cifar100(path, img_size, augment)
    elif kind == "folder":
        from .folder import load_image_folder
        bundle = load_image_folder(path, img_size, in_channels, augment)
    else:
        from .frames import load_frames
        bundle = load_frames(path, img_size, T, in_channels, augment)

    if num_classes is not None and bundle.num_classes > num_classes:
        raise DataError(f"dataset {kind} has {bundle.num_classes} classes but the model has only "
                        f"{num_classes} outputs; use a model with num_classes={bundle.num_classes}")
    return bundle
