"""The process around the spans: its exit, signals, forks, servers, and interrupts.

- ``process_hooks``: the one place that changes the process (``install`` /
  ``uninstall``): ``atexit``, signal handlers, the servers' patches, a log filter.
- ``shutdown``: what is done on the way down (final samples, snapshots, the
  bounded flush), for the processors registered with it.
- ``signals``: our handlers chained in front of the process's own, and kept in
  front where gunicorn resets them; uvicorn's exit handler wrapped.
- ``celery_hooks``: the same for Celery and billiard, and the result backend's
  calls kept out of a task's counts.
- ``import_hooks``: patching a library when it is imported, and unpatching it.
- ``interrupt`` and ``interrupt_signal``: ``SlowRequestInterrupted``, where it
  may land, and the signal that breaks a blocking call on the main thread.
- ``service_thread``: a background thread woken by an event, stopped with a
  join, rebuilt after fork (the watchdog's and the snapshot flusher's).
- ``realthread``: OS threads and locks even under gevent's monkey-patching.
- ``afterfork``: Python's after-fork cleanup where uWSGI skips it.
- ``quiet``: writes to a span that may be ending, without log noise.
"""
