"""The ``simrouter`` subcommands, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets
``handler`` (a function of the parsed arguments returning an exit status).
``COMMANDS`` lists them in the order ``simrouter --help`` shows them.
"""

from . import config_cmd, demo, run, scenarios

COMMANDS = [run, demo, scenarios, config_cmd]
