"""The ``simrouter`` subcommands, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets
``handler`` (a function of the parsed arguments returning an exit status).
``COMMANDS`` lists them in the order ``simrouter --help`` shows them.
"""

from . import calibrate, capacity, compare, compare_configs, config_cmd, dashboard, demo, init_cmd, live, proxy, report, run, scenarios, serve, sweep

COMMANDS = [run, demo, scenarios, init_cmd, config_cmd, serve, proxy, live, compare, calibrate, report, dashboard, sweep, compare_configs, capacity]
