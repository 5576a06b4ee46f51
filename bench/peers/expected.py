"""The expected output of the whole input, computed once by the mapping engine (not by any peer).

Mapping a few hundred thousand orders takes the engine a while, so the digests are computed on
every core and kept in ``<data>/bench/peers/`` under a name that hashes everything they depend on
(the mapping, the engine's source, the order generator, the count): any change recomputes them.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.peers import orders as orders_module
from bench.peers import work
from bench.peers.orders import order_key, orders
from bench.peers.verify import digest

CHUNK = 10_000
DIGEST_SIZE = 16
KEEP = 4


def _fingerprint(count: int) -> str:
    sha = hashlib.sha256(str(count).encode())
    engine = sorted((work.ROOT / "streams" / "mapping").glob("*.py"))
    for path in [work.MAPPING, work.SAMPLE_ORDER, Path(orders_module.__file__), *engine]:
        sha.update(path.read_bytes())
    return sha.hexdigest()[:20]


def _chunk(bounds: tuple[int, int]) -> bytes:
    map_order = work.order_mapper()
    return b"".join(digest(map_order(value)) for _, value in orders(*bounds))


def expected_digests(count: int, cache_dir: Path) -> dict[bytes, bytes]:
    """``{order key: digest of its mapped value}`` for orders ``0 .. count - 1``."""
    cache = cache_dir / f"expected-{_fingerprint(count)}.bin"
    if cache.exists() and cache.stat().st_size == count * DIGEST_SIZE:
        blob = cache.read_bytes()
    else:
        bounds = [(first, min(first + CHUNK, count)) for first in range(0, count, CHUNK)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            blob = b"".join(pool.map(_chunk, bounds))
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(blob)
        # A few sizes stay cached (a quick run must not evict the default one), no more.
        kept = sorted(cache_dir.glob("expected-*.bin"), key=lambda p: p.stat().st_mtime)
        for stale in kept[:-KEEP]:
            stale.unlink()
    return {order_key(n): blob[n * DIGEST_SIZE : (n + 1) * DIGEST_SIZE] for n in range(count)}
