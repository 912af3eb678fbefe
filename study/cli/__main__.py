"""`python -m study.cli ...` is `wt-study ...`."""

import sys

from study.cli import main

sys.exit(main())
