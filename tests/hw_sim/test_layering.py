"""The chip owns its program format: ``hw_sim`` imports nothing from the compilers or the CLI.

DESIGN.md's one-way pipeline: exporters lower *into* hw_sim's format, the simulator never
imports the exporters, the CLI or the model zoo. Checked two ways: statically (every import
statement in ``hw_sim/``, including those inside functions) and by importing every hw_sim
module in a fresh interpreter and looking at what got loaded.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the project modules hw_sim may use: shared utilities (errors, files, limits, interrupts, progress bars) and
# the dataset readers, never a model
ALLOWED_SRESFORMER = ("sresformer.errors", "sresformer.fileio", "sresformer.limits", "sresformer.interrupt",
                      "sresformer.progress",
                      "sresformer.spike_gate", "sresformer.data", "sresformer.evaluate")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_hw_sim_imports_no_compiler_module():
    bad = []
    for path in sorted((ROOT / "hw_sim").rglob("*.py")):
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top in ("exporters", "cli") or (top == "sresformer" and not mod.startswith(ALLOWED_SRESFORMER)):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_hw_sim_loads_without_the_compilers():
    mods = [p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            for p in sorted((ROOT / "hw_sim").glob("*.py")) if p.name != "__init__.py"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('exporters', 'cli')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    assert len(mods) > 10   # the scan saw the package (guards against a wrong ROOT)
