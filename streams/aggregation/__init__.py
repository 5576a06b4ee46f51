"""Data Aggregation: many sources normalised into one canonical Avro event, loaded into a
warehouse table exactly once.

``logic/`` holds each source's TransformationLogic (pure), ``transform.py`` picks one and
builds canonical events, ``pipeline.py`` puts it on the road, ``loader.py`` is the warehouse
loader (its own process, ``synapseops loader``).
"""
