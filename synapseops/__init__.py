"""SynapseOps shared kernel: settings, errors, ids, logging, the Kafka client factory, the CLI."""

__version__ = "0.1.0"
