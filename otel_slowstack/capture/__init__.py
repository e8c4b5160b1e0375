"""Reading a stack from outside its thread, in the order a sample flows:

- ``machinery``: which frames are OpenTelemetry's, ours or a server's own;
- ``entry``: where a span's own code begins on its stack (``on_start`` finds
  the starter; a sample walks to it);
- ``owners``: the ``Owner`` protocol, and choosing one as a span starts;
  ``thread_owner``, ``task_owner``, ``greenlet_owner`` implement it;
- ``await_chain``: a suspended asyncio task's stack, from its awaits;
- ``pool_threads``: the pool thread working on the future a request waits for;
- ``async_exception``: raising an exception in another thread, where it may land;
- ``frames``: live frames to plain ``FrameLine`` data, cached per (code,
  offset); ``local_variables`` and ``redaction`` for locals;
- ``stacktrace``: ``FrameLine`` data to one bounded ``code.stacktrace`` value;
- ``cpu``: another thread's CPU clock (the bounded caches are ``otel_slowstack.lru``'s).

Private parts of the interpreter, asyncio, greenlet and gevent read here
live in ``otel_slowstack.seams``.
"""
