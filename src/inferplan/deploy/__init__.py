"""Deploying: engine launch arguments whose memory settings match the plan, manifests
(shell, compose, Kubernetes, KServe, llm-d, Ray Serve), and launching an engine with a bounded wait."""
