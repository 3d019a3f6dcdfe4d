"""`python -m posetransfer` is the `posetransfer` command."""

import sys

from posetransfer.cli import main

sys.exit(main())
