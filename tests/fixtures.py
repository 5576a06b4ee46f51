"""Where the tests find the public sample payloads: ``samples/`` of this repository.

One copy of each payload, committed byte for byte with its source and licence in
``samples/README.md``; the tests, the benchmarks and the demo all read that folder, so a fresh
clone runs with nothing beside it.
"""

from synapseops.settings import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "samples"
