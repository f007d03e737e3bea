"""`python -m fmnist_cli`: what the `fmnist` console script runs (the project's own child processes use it)."""

import sys

from fmnist_cli.main import main

sys.exit(main())
