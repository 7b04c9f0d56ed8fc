"""``python -m notifier --run-dir DIR``: the notifier process (started by the supervisor)."""

import sys

from notifier.process import main

sys.exit(main())
