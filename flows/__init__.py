"""Prefect flows, one per dvc.yaml stage (``python -m flows.<stage>``).

Importing this package sets Prefect defaults that a fresh machine needs before Prefect itself is
imported: a generous start-up timeout for the temporary server that Prefect starts when no
``PREFECT_API_URL`` is set (its 20 s default can fail on a cold machine), and no analytics.
Set ``PREFECT_API_URL`` to a running ``prefect server`` to skip that start-up (about 10 s per
stage) and to watch the runs in the UI.
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
