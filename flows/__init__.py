"""Prefect flows, one per dvc.yaml stage (``python -m flows.<stage>``).

Importing this package sets three defaults in the environment, each only where the user has not
set it, and does nothing else. They must be in place before Prefect is imported (it reads its
settings once, at import) and before any child process starts (the shared server's keeper and
the ``dvc`` commands of the experiment and suite flows inherit them):

- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180``: the flows that are not stages
  (experiment, suite) run without ``PREFECT_API_URL`` on the temporary server that Prefect
  starts, whose 20 s default start-up timeout can fail on a cold machine; the stages' shared
  server (flows/_server.py) waits as long, by the same setting.
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false`` and ``DVC_NO_ANALYTICS=1``: a local run sends no
  usage reports (the machines it runs on may have no network at all).

Set ``PREFECT_API_URL`` to a running ``prefect server`` to watch the runs in the UI; without it,
the stages of a run share one local server (flows/_server.py).
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
