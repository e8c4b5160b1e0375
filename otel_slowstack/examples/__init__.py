"""The example shop ``otel-slowstack demo`` runs, shipped with the package so
the demo works from any installation (``pip install 'otel-slowstack[examples]'``).

``examples/shop.py`` in the repository is a link to ``shop.py`` here. The
instrumentation never imports this package; the demo copies ``shop.py`` into
its working directory and serves it from there, so its frames read as the
application's own code in the report, as they would in yours.
"""
