"""`python -m braze_sends.dashboard --db braze_sends.duckdb`."""

import sys

from braze_sends.dashboard.server import main

sys.exit(main())
