"""The configs that ship with fmnist-parity: YAML files installed as this package, so `--config NAME`
finds them outside a checkout (fmnist.config_files reads them)."""
