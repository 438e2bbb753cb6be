"""Leadgate's Python client: decide sales leads over gRPC from plain dicts."""

from leadgate_client.client import (
    FIELD_METADATA_KEY,
    BatchResult,
    Lead,
    LeadgateClient,
    LeadgateError,
    decision_to_dict,
    to_request,
)
from leadgate_client.v1.qualification_pb2 import (
    Decision,
    ExplainLevel,
    LeadError,
    QualifyRequest,
    Stage,
)

__all__ = [
    "FIELD_METADATA_KEY",
    "BatchResult",
    "Decision",
    "ExplainLevel",
    "Lead",
    "LeadError",
    "LeadgateClient",
    "LeadgateError",
    "QualifyRequest",
    "Stage",
    "decision_to_dict",
    "to_request",
]
