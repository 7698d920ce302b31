"""``warmline bench``: warmline against its peers and the raw floors, in one run.

Not public API. The pieces:

- :mod:`~warmline._bench.clients`: one small factory per client (warmline and
  the peers, configured as the anchors describe), and the raw floors. Peers are
  imported inside their factory only, so a missing one costs nothing.
- :mod:`~warmline._bench.child`: runs the cases of one client in a fresh
  process (``python -m warmline._bench.child SPEC``), one JSON line per case.
- :mod:`~warmline._bench.runner`: starts the loopback server, plans the cases,
  runs the children round after round, and takes the medians.
- :mod:`~warmline._bench.report`: the terminal table, ``bench-report.md``,
  ``bench-report.json`` and ``bench-report.png``.
"""
