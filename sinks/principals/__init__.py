"""Who may call the API and the console: the ``principals`` table, its token store (named
API tokens, roles) and its users (:mod:`sinks.principals.users`: passwords, console sessions)."""
