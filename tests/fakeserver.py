"""A real gRPC server on a free local port running fake servicers, for client tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc

from leadgate_client.v1 import qualification_pb2_grpc, ruleset_pb2_grpc


@contextmanager
def serving(
    qualification: qualification_pb2_grpc.QualificationServiceServicer,
    rulesets: ruleset_pb2_grpc.RulesetServiceServicer | None = None,
) -> Iterator[str]:
    """Serve the fakes on 127.0.0.1, port 0, and give the address while it runs."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    qualification_pb2_grpc.add_QualificationServiceServicer_to_server(
        qualification, server
    )
    if rulesets is not None:
        ruleset_pb2_grpc.add_RulesetServiceServicer_to_server(rulesets, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()
