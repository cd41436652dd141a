"""The drill engine: a table of phases over a typed, persisted progress model.

``engine.PHASES`` is the whole drill, in order::

    prepare → warm-up → faults → recover → measure → clean-up

Each phase is a function ``(Drill) -> None`` that reads and updates ``Drill.progress``
(``progress.Progress``, pydantic) and acts through ``Drill.platform`` (the
``platform.Platform`` protocol: canaries, writes, faults, failover, read-back). The
engine saves the progress after each phase and at each step inside the long ones, so a
drill killed at any point resumes from what it saved; resuming needs nothing but the
saved model.

``measure`` holds the arithmetic (seeded write schedule, RPO from the oldest lost write,
tier figures); the verdict itself is ``model.drill_report.judge``. Rendering the report
(rich, HTML, Markdown, JUnit) happens outside the engine.
"""
