"""The command line: ``digitnet COMMAND ...``.

The CLI only parses, calls the library and formats. Each group of commands lives in its
own module below and registers itself on :data:`main`; a :class:`~digitnet.errors.DigitnetError`
from the library becomes one ``Error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import click

from digitnet.errors import DigitnetError


class _Group(click.Group):
    """A click group that reports digitnet's own errors as one line, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DigitnetError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="digitnet")
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


# Each module adds its commands to ``main`` when imported.
from digitnet.cli import descend, evaluate, export, predict, serve, show, train  # noqa: E402,F401
