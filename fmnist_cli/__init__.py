"""The `fmnist` command: the top floor, above every package.

Each subcommand lives in its own module (`train`, `parity`, `compare`, `benchmark`, `predict`,
`export`, `serve`) and registers its parser with `add_parser`; `main` parses and turns errors a
user can fix into one line. Imports point only down from here: the command -> compare, serving
-> keras_model, lightning_model -> fmnist (the core). Frameworks are imported only by the
subcommand that needs one, so `fmnist --help` stays quick.
"""
