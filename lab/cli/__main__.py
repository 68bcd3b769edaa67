"""`python -m pglab.lab.cli`: the same as the `pglab` console script."""

import sys

from pglab.lab.cli import main

sys.exit(main())
