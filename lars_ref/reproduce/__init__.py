"""The paper's experiments in miniature: a sweep runner, named experiments, results.

* :mod:`~lars_ref.reproduce.grid`         run specs, grid files, run folder names
* :mod:`~lars_ref.reproduce.experiments`  the named experiments, as data
* :mod:`~lars_ref.reproduce.runner`       check every run, then train the missing ones
* :mod:`~lars_ref.reproduce.worker`       one run in its own process (resumes)
* :mod:`~lars_ref.reproduce.results`      result tables (CSV, Markdown)
* :mod:`~lars_ref.reproduce.figures`      the figures (PNG)
* :mod:`~lars_ref.reproduce.commands`     ``lars-ref reproduce`` and ``lars-ref sweep``
* :mod:`~lars_ref.reproduce.page`         ``docs/results.md`` from ``results/``

Introduced in ``docs/results.md``.
"""
