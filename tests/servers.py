"""Extra servers some tests start: PgBouncer in front of the test PostgreSQL, and PostgreSQL
primaries and hot standbys of their own (streaming replication, promotion).

The helpers live beside the cluster rehearsal, which starts the same servers
(deploy/sim/pg_nodes.py); this module makes them importable as `tests.servers`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SIM = Path(__file__).resolve().parents[1] / "deploy" / "sim"
if str(_SIM) not in sys.path:
    sys.path.insert(0, str(_SIM))

from pg_nodes import PgBouncer, PostgresNode, free_port, pgbouncer_binary, wait_for  # noqa: E402

__all__ = ["PgBouncer", "PostgresNode", "free_port", "pgbouncer_binary", "wait_for"]
