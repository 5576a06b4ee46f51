"""``python -m synapseops.cli``: how the local stack starts its own processes."""

from synapseops.cli import main

main()
