"""TransformationLogic per data source: pure, versioned functions from a source's payload to
canonical events. A module exposes ``NAME``, ``VERSION``, ``FIELD_MAPPING`` (source field →
canonical field, what the API shows) and ``transform(payload, context) -> list[CanonicalEvent]``
raising :class:`~synapseops.errors.PayloadUntransformable` with the reason.
"""
