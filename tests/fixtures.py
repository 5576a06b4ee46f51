"""Where the tests find their data: the public sample payloads and the golden mappings.

``SAMPLES`` is ``samples/`` of this repository: one copy of each payload, committed byte for
byte with its source and licence in ``samples/README.md``; the tests, the benchmarks and the
demo all read that folder, so a fresh clone runs with nothing beside it. ``GOLDEN`` holds the
golden mappings (``<case>.mapping.json``) with their expected outputs (``<case>.expected.json``),
read by the mapping, delivery and API tests alike.
"""

from synapseops.settings import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "samples"
GOLDEN = PROJECT_ROOT / "tests" / "golden"
