"""The Dramatiq queues, named once.

- ADVANCE: wake-ups of a run (a due retry, a ready step, the run's end); the worker that
  takes one runs ordinary steps inline.
- STEPS: attempts of ordinary steps (transforms, branches, HTTP calls, tools).
- LLM: attempts of model calls, slow: a pool of their own can be sized apart.
"""

ADVANCE = "runs"
STEPS = "steps"
LLM = "llm"
ALL = (ADVANCE, STEPS, LLM)
