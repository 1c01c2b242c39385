"""`python -m resnets` (and `torchrun -m resnets`) runs the CLI."""

import sys

from .cli import main

sys.exit(main())
