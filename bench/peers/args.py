"""The command line every peer process takes (standard library only: the quixstreams peer runs
it from its own virtual environment)."""

from __future__ import annotations

import argparse


def peer_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--input", required=True, help="topic of raw Shopify orders")
    parser.add_argument("--output", required=True, help="topic the mapped orders go to")
    parser.add_argument("--group", required=True, help="consumer group (new per run)")
    return parser
