"""Random workflow programs: a generator, an independent interpreter, a builder and a runner.

``generator`` draws a tree description from a seed (plain data, no mai); ``interpreter``
predicts the run's result and side effects from that description alone (no mai);
``builder`` turns the description into real mai modules whose bodies write a side-effect
ledger outside the store; ``runner`` runs programs as durable runs in worker subprocesses
(``worker.py``), SIGKILLs them and injects store faults, then checks everything.
"""
