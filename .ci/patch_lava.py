"""Make lava-nc 0.10 / lava-dl 0.6 (archived, declared for Python < 3.11) import and run here.

Run with the interpreter of the environment that holds them: ``VENV/bin/python .ci/patch_lava.py``.
Every fix is an exact string replacement in an installed file. The script is idempotent: a
fix whose replacement is already there is skipped; a fix whose original text is missing too
(a different Lava release) stops the script with exit status 1, naming the file and the fix.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# (file under the ``lava`` package, why, old text, new text, expected count of old)
FIXES = [
    ("magma/compiler/var_model.py",
     "Python 3.11 dataclasses refuse an unhashable instance as a field default",
     "from dataclasses import dataclass, InitVar",
     "from dataclasses import dataclass, InitVar, field", 1),
    ("magma/compiler/var_model.py",
     "same: give every ByteEncoder field a default_factory",
     ": ByteEncoder = ByteEncoder()",
     ": ByteEncoder = field(default_factory=ByteEncoder)", 8),
    ("lib/dl/slayer/__init__.py",
     "object detection imports cv2 and torchvision at import time (absent; torchvision must not load): "
     "import it on first use only",
     "from . import object_detection as obd\n",
     "def __getattr__(name):  # patched: object_detection (cv2, torchvision) on first use only\n"
     "    if name == 'obd':\n"
     "        from . import object_detection\n"
     "        return object_detection\n"
     "    raise AttributeError(name)\n", 1),
    ("magma/core/process/ports/ports.py",
     "numpy 2.4 removed np.reshape's newshape= keyword (ReshapePort: netx's flatten)",
     "import functools as ft\n",
     "import functools as ft\n\n\ndef _reshape(x, shape):  # patched: no newshape= keyword in numpy 2.4\n"
     "    return np.reshape(x, shape)\n", 1),
    ("magma/core/process/ports/ports.py", "same, forward transform",
     "ft.partial(np.reshape, newshape=self.shape)", "ft.partial(_reshape, shape=self.shape)", 1),
    ("magma/core/process/ports/ports.py", "same, backward transform",
     "ft.partial(np.reshape, newshape=self.old_shape)", "ft.partial(_reshape, shape=self.old_shape)", 1),
    ("lib/dl/netx/hdf5.py", "numpy 2.4 refuses int() of a 1-element array (netx input layer weight)",
     "weight = int(layer_config['weight'])", "weight = int(np.ravel(layer_config['weight'])[0])", 1),
    ("lib/dl/netx/hdf5.py", "same, input layer bias",
     "bias = int(layer_config['bias'])", "bias = int(np.ravel(layer_config['bias'])[0])", 1),
]


def lava_file(rel: str) -> Path:
    """An installed file of the ``lava`` namespace package, found without importing it
    (importing is what the fixes repair); lava-nc and lava-dl share the namespace."""
    spec = importlib.util.find_spec("lava")
    if spec is None:
        raise SystemExit("patch_lava: lava is not installed in this environment")
    for root in spec.submodule_search_locations:
        if (Path(root) / rel).exists():
            return Path(root) / rel
    raise SystemExit(f"patch_lava: lava/{rel} not found; is this lava-nc 0.10 / lava-dl 0.6?")


def main() -> int:
    failed = 0
    for name, why, old, new, count in FIXES:
        path = lava_file(name)
        text = path.read_text()
        if new in text:  # first: a replacement may contain its original
            continue
        if old in text:
            found = text.count(old)
            if found != count:
                print(f"patch_lava: {path}: expected {count} x {old!r}, found {found} ({why})", file=sys.stderr)
                failed += 1
                continue
            path.write_text(text.replace(old, new))
            print(f"patch_lava: patched {path.name}: {why}")
        else:
            print(f"patch_lava: {path}: neither the original nor the patched text of a fix is there "
                  f"({why}): {old!r}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
