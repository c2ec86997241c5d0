"""The built-in scenarios, one TOML file each (``simrouter scenarios`` lists them)."""
