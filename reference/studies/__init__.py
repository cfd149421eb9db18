"""The studies behind docs/results.md, each a module with its own ``python -m`` command.

* :mod:`~reference.studies.paper`: the AdaRound paper's tables on the digits MLP
  (``python -m reference.studies.paper``), with :mod:`~reference.studies.paper_cnn` for the CNN;
* :mod:`~reference.studies.sparse_study`: the l0 sparse-coding study on natural-image patches;
* :mod:`~reference.studies.sparse_scale`: dictionaries learned at scale, resumable;
* :mod:`~reference.studies.sparse_v1`: the V1 study's claims on those dictionaries
  (tuning and receptive-field shapes of one dictionary in :mod:`~reference.studies.v1_fields`,
  figures in :mod:`~reference.studies.sparse_v1_figures`).

Each shows a progress bar of its steps on stderr when asked (:mod:`~reference.studies.progress`).
"""
