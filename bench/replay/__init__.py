"""Replays of searches against a tabular benchmark (``bench/tabular.py``'s parts):

* ``lookup`` — a table as the agents see it (canonical text → recorded numbers), cached per
  worker process, and the screening scores of ``bench/screening.py``;
* ``replay`` — ``Job`` (one agent, seed and arm), ``Run`` (its best-so-far curve) and the
  replays themselves: nasrl's agents as the controller drives them, Optuna TPE;
* ``summary`` — the statistics of many runs (checkpoints, regret, cost to random's best);
* ``output`` — the printed tables and the plots.

``tests/bench/test_replay_agrees.py`` holds the replay to the controller: proposal by proposal,
the same networks and the same decisions as ``controller_service.searches.Searches``."""
