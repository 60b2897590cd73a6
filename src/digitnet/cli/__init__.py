"""The command line: ``digitnet COMMAND ...``.

The CLI only parses, calls the library and formats. Each group of commands lives in its
own module below and registers itself on :data:`main`; a :class:`~digitnet.errors.DigitnetError`
from the library becomes one ``Error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import importlib

import click

from digitnet import __version__
from digitnet.errors import DigitnetError


def _one_line(e: click.UsageError) -> click.ClickException:
    """A usage error (a bad flag value, a missing argument, an unknown option or command) as
    one ``Error: ...`` line that names it and says where to look, for exit status 1, instead
    of click's four lines (usage, hint, blank, error) and status 2."""
    message = " ".join(e.format_message().split())
    if not message.endswith((".", "?", "!", ")")):
        message += "."
    command = e.ctx.command_path if e.ctx is not None else "digitnet"
    return click.ClickException(f"{message[:1].upper()}{message[1:]} See '{command} --help'.")


class _Group(click.Group):
    """A click group that reports digitnet's own errors, and click's usage errors, as one
    line without a traceback, exit status 1 (``--help``, and the help shown for a bare
    ``digitnet``, are unchanged)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            if isinstance(e, _NoArgsIsHelp):
                raise
            raise _one_line(e) from None

    # Command name -> the module under digitnet.cli that registers it on ``main``. A module is
    # imported when its command is looked up (running it, or ``--help`` listing them all), so
    # ``digitnet predict`` does not import the training, plotting or web code.
    lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in self.lazy_commands:
            importlib.import_module(f"digitnet.cli.{self.lazy_commands[name]}")
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DigitnetError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:  # Ctrl-C where the command does not handle it (loading, starting up)
            click.echo("Interrupted.", err=True)  # not click's "Aborted!" with status 1, an error's
            ctx.exit(130)
        except click.UsageError as e:
            if isinstance(e, _NoArgsIsHelp):
                raise
            raise _one_line(e) from None


# Click 8.2+ shows a group's help for a bare ``digitnet`` (or ``digitnet show``) through a
# usage error of this class; that one keeps click's own output.
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, package_name="digitnet", message="%(prog)s %(version)s")
def main() -> None:
    """digitnet: a neural network that learns to read handwritten digits.

    It is the network of 3Blue1Brown's "Gradient descent, how neural networks learn",
    written from scratch in NumPy: train it, evaluate it, feed it your own digits,
    look inside it, and watch gradient descent on 2-D functions.

    \b
    Start with:
      digitnet train                 # the video's 784-16-16-10 network on MNIST
      digitnet evaluate digitnet-model.safetensors
      digitnet descend "3/2x^2 + 1/2y^2" --start 1,1
    """


# Each module adds its command to ``main`` when imported, which is when the command is first
# looked up (see _Group.get_command).
main.lazy_commands = {name: name for name in ("config", "descend", "evaluate", "export", "predict", "serve",
                                              "show", "sweep", "train")}
