"""The claude.ai accounts: the session pool, account resolution, the state file, the ``sessions`` report."""
