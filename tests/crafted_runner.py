"""Run many ``sresformer`` command lines in one worker process, each under its own alarm.

Used by the crafted-input tests (``testutil.run_cases``): starting a Python with torch for
every case would cost seconds per case, so one worker runs a batch of cases in turn, each
through the real CLI entry point, and reports per case: exit status, stderr, whether a
traceback escaped, and whether it ran past its time. The worker itself runs under a memory
cap (``RLIMIT_AS``), so a case that tries to balloon fails inside it instead of taking the
machine down.

Usage: ``python tests/crafted_runner.py CASES.json RESULTS.json`` where CASES.json is
``{"timeout_s": 20, "mem_gib": 6, "cases": [[arg, ...], ...]}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path

# run as a script from tests/: its folder (whose sresformer/ holds tests) must not shadow the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


class CaseTimeout(BaseException):
    """Raised by SIGALRM: the case ran past its time (a hang)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def run_one(args: list[str], timeout_s: int) -> dict:
    """Exit status, stdout, stderr, traceback flag and timeout flag of one ``sresformer ARGS`` run."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    rec = {"args": args, "rc": None, "stdout": "", "stderr": "", "traceback": None, "timeout": False}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
                rec["rc"] = 0
            except SystemExit as e:
                rec["rc"] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except CaseTimeout:
        rec["timeout"] = True
    except MemoryError:
        rec["traceback"] = "MemoryError"
    except BaseException:  # noqa: BLE001 - an escaped exception is exactly what the test looks for
        rec["traceback"] = traceback.format_exc(limit=6)
    finally:
        signal.alarm(0)
    rec["stdout"], rec["stderr"] = out.getvalue(), err.getvalue()
    return rec


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    cap = int(spec.get("mem_gib", 6) * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.environ.setdefault("SRESFORMER_NO_PROGRESS", "1")
    results = [run_one([str(a) for a in case], int(spec.get("timeout_s", 20))) for case in spec["cases"]]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
