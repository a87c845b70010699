"""Speed: the operator roofline of one engine step, one replica as the simulator sees it, the
continuous-batching simulator, workloads, metrics, the analytic steady state, predictions and
validation against measurements."""
