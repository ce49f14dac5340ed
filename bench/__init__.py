"""Benchmark of what claude2api adds between a client and claude.ai (run ``bench/run.py``).

Three processes: the load client (``run.py`` itself), the fake claude.ai (``fake_server.py``) and
the daemon (``python -m claude2api``). Every figure is measured twice with the same client code,
once against the fake directly and once through the daemon, and reported as proxied minus direct.
"""
