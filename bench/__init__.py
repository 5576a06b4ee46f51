"""Benchmarks: they print figures and assert nothing about time (tests never do either).

``make bench`` runs every module listed in :data:`bench.__main__.BENCHES` against the local
stack it brings up itself (the project's broker, database and sandbox).
"""
