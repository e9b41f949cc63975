"""The ``sresformer`` click group: lazy sub-commands, one error line and exit 2 for bad input.

Every way a command can end is one line on stderr at most: a ``UserError`` (bad input) or
a click usage error is ``sresformer: error: ...`` with exit status 2; SIGINT and SIGTERM
print one line and exit 130 / 143 after the writers have removed their temporary files.
Under torchrun a bad input is one line for the whole job (rank 0's, or another rank's own error
with its rank named: ``hw_sim.shard.should_report``) and every rank exits 2. When one rank fails
alone (a file missing on one machine only), it says why in its line and ends; each rank still
waiting for it in a collective then prints one line of its own, that another rank ended first and
where to look (``hw_sim.shard.PeerLost``), and exits 2 too: one line per rank, on each machine's
stderr, no traceback. A rank killed outright says nothing; torchrun's report gives its exit status.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click


def _in_job() -> bool:
    """True in a rank of a torchrun job of more than one process (``WORLD_SIZE``; torch not imported)."""
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


if _in_job():
    # torch reads TORCH_CPP_LOG_LEVEL once, when its library loads (the sresformer package imports it, just
    # below). When a sibling rank has gone, the c10d store and gloo log it in this rank with C++ stack frames
    # ([W] when a store connection closes, [E] when the store cannot be reached), though the error they
    # raise is the job's one line here (hw_sim.shard.PeerLost, should_report): FATAL, as ERROR still lets
    # the [E] ones through. Only the ranks: torchrun's agent is torch's process and keeps its own logs.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")

from sresformer import interrupt  # noqa: E402 - after TORCH_CPP_LOG_LEVEL (above): this loads torch
from sresformer.errors import UserError  # noqa: E402 - the same

# name -> "module:function"; loaded only when used, so `sresformer --help` stays fast
COMMANDS = {
    "models": "cli.models_cmd:models",
    "import-official": "cli.checkpoint_cmd:import_official",
    "export": "cli.export_cmd:export",
    "train": "cli.train_cmd:train",
    "eval": "cli.eval_cmd:eval_cmd",
    "convert": "cli.convert_cmd:convert",
    "energy": "cli.energy_cmd:energy",
    "simulate": "cli.simulate_cmd:simulate",
    "report": "cli.report_cmd:report",
}

# what to tell the user after an interruption, per command (train can be continued)
AFTER_INTERRUPT = {
    "train": "interrupted; no checkpoint was left half-written: continue the run with "
             "'sresformer train ... --resume' (same --model and --out)",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use; ``UserError`` -> stderr line, exit 2."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        # here too, not only in run(): tests and scripts call the group directly (click's CliRunner)
        try:
            return super().invoke(ctx)
        except UserError as e:
            _error(str(e))
            ctx.exit(2)


def _line(text: str) -> str:
    return " ".join(str(text).split())


def _error(text: str, status: int = 2) -> int:
    """Print the error line (under torchrun: once for the job, see :func:`hw_sim.shard.should_report`)."""
    line = _line(text)
    if _in_job():   # a torchrun job: every rank meets the same input
        from hw_sim.shard import env_rank, should_report

        _end_on_sigterm(status)
        rank = env_rank()[0]
        if rank == 0:   # print before telling the others: once they end, torchrun stops this rank
            click.echo(f"sresformer: error: {line}", err=True)
        if should_report(line) and rank != 0:
            click.echo(f"sresformer: error: rank {rank}: {line}", err=True)
        return status
    click.echo(f"sresformer: error: {line}", err=True)
    return status


def _end_on_sigterm(status: int) -> None:
    """From here on SIGTERM ends this process with ``status``, silently: under torchrun it means a sibling
    rank has ended (with the same error, or its own) and torchrun is stopping the rest; this rank has
    nothing left to write (its outputs are closed, their temporary files removed)."""
    def leave(signum, frame):
        sys.stderr.flush()
        os._exit(status)
    try:
        signal.signal(signal.SIGTERM, leave)
    except ValueError:   # not the main thread (an embedding caller): keep its handler
        pass


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.version_option(package_name="sresformer")
@click.pass_context
def cli(ctx):
    """SpikingResformer from PyTorch training to a Loihi-style chip: train, export, simulate, energy."""
    if ctx.invoked_subcommand is None:   # plain `sresformer`: the help, as a successful answer
        click.echo(ctx.get_help())


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=argv, prog_name="sresformer", standalone_mode=False)
        interrupt.check()
        return rv if isinstance(rv, int) else 0
    except UserError as e:
        return _error(str(e))
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "sresformer"
        return _error(f"{e.format_message()} (see '{cmd} --help')", e.exit_code)
    except click.ClickException as e:
        return _error(e.format_message(), e.exit_code)
    except (KeyboardInterrupt, click.Abort, interrupt.Terminated):
        return _interrupted(argv)
    except BrokenPipeError:   # `sresformer ... | head`: the reader left; nothing more to say
        return 141
    except Exception:
        # a C extension can turn the signal's exception into an error of its own (h5py raises
        # TypeError from its type-conversion callback): after a signal, that is the interruption
        if interrupt.received() is None:
            raise
        return _interrupted(argv)


def _interrupted(argv: list[str]) -> int:
    """Say in one line that a signal stopped the command; its exit status (130 SIGINT, 143 SIGTERM)."""
    sig = interrupt.received() or signal.SIGINT
    what = AFTER_INTERRUPT.get(_command_name(argv), "interrupted; no partial output was left")
    if sig == signal.SIGTERM:
        what = what.replace("interrupted", "terminated", 1)
    click.echo(f"sresformer: {what}", err=True)
    return interrupt.EXIT_STATUS.get(sig, 130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: exits with the status of :func:`run`."""
    interrupt.install()
    status = run(argv)
    if status == 2 and _in_job():
        # a torchrun rank that refused its input: end now, not after the interpreter's teardown of torch
        # (Python restores the default SIGTERM action there, and torchrun signals the ranks still running
        # once one has ended: they would end by the signal, not with 2); every output is closed by now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    main()
