"""Measuring real servers: a load generator for OpenAI-compatible endpoints, a local
streaming server for self-checks and fault tests, and a SQLite results store."""
