"""`python -m supervisor`: the same command as the `kafka-pipeline` console script."""

import sys

from supervisor.cli import main

sys.exit(main())
