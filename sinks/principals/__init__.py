"""Who may call the API: the ``principals`` table and its store (named API tokens, roles)."""
