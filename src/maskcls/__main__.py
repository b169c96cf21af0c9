"""`python -m maskcls ...` (and `torchrun -m maskcls ...`) run the command line."""

import sys

from .cli import main

sys.exit(main())
