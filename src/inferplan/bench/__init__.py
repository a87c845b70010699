"""Measuring: the load generator and its HTTP/SSE transport, the local test server, the results
database, server telemetry, GPU micro-benchmarks, calibration from runs, and runs set against
the model."""
