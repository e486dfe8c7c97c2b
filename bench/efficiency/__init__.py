"""The search-efficiency benchmark with real training (bench/search_efficiency.py, its
command line), one module per concern:

* ``settings`` — what is compared: the agents, the two search spaces and each agent's
  settings;
* ``runlog`` — what one (dataset, agent, seed) run spent and found, measured at the budget;
* ``trainers`` — the local controller and trainers, one recorded training, the warm-up;
* ``runs`` — the searches: nasrl's agents through ``nasrl.runner``, every agent and seed
  of a dataset;
* ``tpe`` — Optuna's TPE over the same Zoph decisions (an optional dependency);
* ``stats`` — best-so-far curves and the summary over seeds;
* ``output`` — the printed table, the settings written to the JSON, the plot.
"""
