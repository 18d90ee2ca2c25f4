"""The rules of this suite.

1. Real parts: a real Postgres (the embedded one, started once per session by the fixture below),
   real WebSocket servers speaking each exchange's recorded frames, a real HTTP client against the
   real server, a real SMTP server. Fakes only for what cannot run here (the exchanges themselves).
2. Every test that does I/O runs under ``trio.fail_after`` so a hang is a failure, not a stall.
3. Servers bind port 0 and are started with ``await nursery.start(...)``.
4. Backoff, cooldowns and staleness are tested with trio's ``autojump_clock``, never by sleeping.
5. Tests assert behaviour; speed is measured by ``benchmarks/``, never asserted here.
6. Tests mirror modules: ``tests/book/`` for ``engine/book/``, ``tests/store/`` for the store, ...
"""
