"""``python -m data_shards`` runs the ``scm-shards`` command line."""

import sys

from data_shards.cli import main

sys.exit(main())
