"""``python -m digitnet`` is the ``digitnet`` command."""

from digitnet.cli import main

main(prog_name="digitnet")
