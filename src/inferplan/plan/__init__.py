"""Planning: the plan question, candidates, the search, the simulator's check at steady state,
the four-step explanation, cost, and the one plan path (:mod:`inferplan.plan.service`)."""
