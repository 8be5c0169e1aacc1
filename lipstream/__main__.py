"""`python -m lipstream` is the `lipstream` command."""

import sys

from lipstream.cli import main

sys.exit(main())
