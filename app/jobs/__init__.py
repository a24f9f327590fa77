"""Jobs below the HTTP layer: training jobs and classification jobs.

- :mod:`app.jobs.records`: what a job is, as stored and as answered (``TrainingJob``,
  ``ClassifyJob``).
- :mod:`app.jobs.training`: training jobs (``POST /train``), one at a time in a thread of the
  service, records in ``<models>/.jobs/``.
- :mod:`app.jobs.classify`: classification jobs (``POST /jobs``): their folders (``store``), the
  engines that run them (``engines``: in the service, or on a Redis queue read by
  ``python -m app worker``), the page runner both share (``runner``), the rq tasks (``tasks``) and
  the service side that makes, answers, cancels and expires them (``manager``).

Nothing here imports :mod:`app.api`: the API sits on top and only turns these into HTTP.
"""
