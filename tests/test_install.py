"""The install stays on the CPU build of torch, and nothing of ours imports torchvision."""

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_torch_is_the_pinned_cpu_wheel():
    pinned = re.search(r"^torch==(\S+)", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert torch.__version__.split("+")[0] == pinned
    assert torch.version.cuda is None, "a CUDA build of torch was installed"


def test_no_cuda_wheels_installed():
    cuda = sorted(d.metadata["Name"] for d in md.distributions()
                  if (d.metadata["Name"] or "").lower().startswith(("nvidia-", "triton")))
    assert cuda == [], f"CUDA packages pulled in: {cuda}"


def test_our_packages_never_import_torchvision():
    code = ("import sys, sresformer, sresformer.complexity, sresformer.official, cli.main;"
            "import importlib, pkgutil;"
            "[importlib.import_module(m.name) for p in ('sresformer', 'cli') "
            " for m in pkgutil.walk_packages(importlib.import_module(p).__path__, p + '.')];"
            "bad = [m for m in sys.modules if m.startswith(('torchvision', 'torchaudio'))];"
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
