"""Deploying: engine launch arguments whose memory settings match the plan, manifests
(shell, compose, Kubernetes), and launching an engine with a bounded wait."""
