"""``nasrl dashboard``: a read-only web app over a controller's RPCs (and, given
``--trainers``, the trainers'): every search, its progress, leaderboard, curves and networks.
It is a client like the CLI: it never opens the controller's database."""
