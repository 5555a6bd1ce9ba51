"""Pure metric functions, computed per prompt group (the N samples of one system for one prompt).

* :mod:`overtonlite.metrics.lexical`: the paper's content-word sets, pairwise Jaccard, word counts, distinct-n.
* :mod:`overtonlite.metrics.stance`: yes / no / both / other stance of answers to contested yes/no questions,
  with a rule-based classifier that needs no LLM, plus agreement statistics (Cohen's kappa, confusion matrix).
* :mod:`overtonlite.metrics.style`: numbered and bulleted lists, refusals, degenerate samples.
* :mod:`overtonlite.metrics.stats`: seeded percentile-bootstrap confidence intervals and Spearman's rho.

Importing this package is cheap: NLTK is loaded on the first tokenisation, numpy only by ``stats``.
"""
