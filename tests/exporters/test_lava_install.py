""".ci/patch_lava.py on a stand-in ``lava`` tree (files holding each fix's original text, built from its own list):
it applies every fix, is idempotent, and fails loudly, naming the file and the fix, when a fix's target text is
missing or found a different number of times. Runs with ``python -S`` and the tree on PYTHONPATH only, so the
installed Lava is never touched. (.ci/lava-constraints.txt: the installed Lava stack is at its pins.)"""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testutil import ROOT

SCRIPT = ROOT / ".ci" / "patch_lava.py"


def _fixes():
    spec = importlib.util.spec_from_file_location("patch_lava", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FIXES


def _tree(root: Path, drop: int | None = None, extra: int | None = None) -> Path:
    """``root/lava/...``: per file, every fix's original text as many times as the fix expects (``drop``: that fix's
    text left out; ``extra``: that fix's text once more than expected), between lines of other text."""
    files: dict[str, str] = {}
    for i, (name, _why, old, _new, count) in enumerate(_fixes()):
        n = 0 if i == drop else count + (i == extra)
        files[name] = files.get(name, "# head\n") + (old + "\n# other\n") * n
    for name, text in files.items():
        (root / "lava" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lava" / name).write_text(text)
    return root


def _patch(root: Path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-S", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def _snapshot(root: Path) -> dict:
    return {p: p.read_text() for p in sorted((root / "lava").rglob("*.py"))}


def test_every_fix_applies_once_and_a_second_run_changes_nothing(tmp_path):
    root = _tree(tmp_path)
    r = _patch(root)
    assert r.returncode == 0, r.stderr
    for name, _why, _old, new, _count in _fixes():
        assert new in (root / "lava" / name).read_text(), name
    assert r.stdout.count("patch_lava: patched") == len(_fixes())
    before = _snapshot(root)
    r = _patch(root)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert _snapshot(root) == before


@pytest.mark.parametrize("case", ["missing", "count"])
def test_a_fix_whose_target_text_is_not_there_fails_loudly(tmp_path, case):
    """The last fix (netx's input bias) without its original text, or with it once too often: exit status 1 and a
    line naming the file and the fix, whose text is left as it was (the fixes before it still apply)."""
    last = len(_fixes()) - 1
    name, why, _old, _new, count = _fixes()[last]
    root = _tree(tmp_path, **({"drop": last} if case == "missing" else {"extra": last}))
    r = _patch(root)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("patch_lava:")]
    assert len(lines) == 1 and name in lines[0] and why in lines[0], r.stderr
    if case == "count":
        assert f"expected {count} x" in lines[0] and f"found {count + 1}" in lines[0]
    assert (root / "lava" / name).read_text().count(_old) == (0 if case == "missing" else count + 1)


def test_the_installed_lava_stack_is_at_its_pins():
    """Every package .ci/lava-constraints.txt pins is installed at exactly that version (when Lava is installed)."""
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")
    pins = [ln.split("#")[0].strip() for ln in (ROOT / ".ci" / "lava-constraints.txt").read_text().splitlines()]
    pins = dict(p.split("==") for p in pins if p)
    assert {"lava-nc", "lava-dl", "numpy"} <= set(pins)
    assert {k: importlib.metadata.version(k) for k in pins} == pins
