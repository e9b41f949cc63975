"""The ``sresformer`` click group: lazy sub-commands, and one error line with exit 2 for bad input."""

from __future__ import annotations

import importlib

import click

from sresformer.errors import UserError

# name -> "module:function"; loaded only when used, so `sresformer --help` stays fast
COMMANDS = {
    "models": "cli.models_cmd:models",
    "import-official": "cli.checkpoint_cmd:import_official",
    "export": "cli.export_cmd:export",
    "train": "cli.train_cmd:train",
    "eval": "cli.eval_cmd:eval_cmd",
    "energy": "cli.energy_cmd:energy",
    "simulate": "cli.simulate_cmd:simulate",
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
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"sresformer: error: {' '.join(str(e).split())}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sresformer")
def cli():
    """SpikingResformer from PyTorch training to a Loihi-style chip: train, export, simulate, energy."""


def main():
    """Console entry point."""
    cli(prog_name="sresformer")


if __name__ == "__main__":
    main()
