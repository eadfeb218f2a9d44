"""``python -m driftline.cli``: the command line, as the ``driftline`` script runs it."""

from driftline.cli.main import main

main()
