"""`python -m server.cli`: the baton command line."""

import sys

from server.cli import main

sys.exit(main())
