"""6. Memory: RSS and the size of otel-slowstack's own registries while
1,000,000 spans go through, 5 % of them slow enough to be sampled."""

from __future__ import annotations

import gc
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from common import emit, quick_run, rss_bytes
from otel_slowstack import SlowStackProcessor

THREADS = 20


class NoopExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def main() -> None:
    total = 100_000 if quick_run(__doc__) else 1_000_000
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 14))
    processor = SlowStackProcessor(threshold="2ms", interval="1ms", max_samples=2, snapshot_after=None)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    per_thread = total // THREADS
    done = [0] * THREADS
    checkpoints = []

    def serve(n: int) -> None:
        for i in range(per_thread):
            with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER):
                if i % 20 == 0:  # 5 % slow: sampled twice each
                    time.sleep(0.004)
            done[n] = i + 1

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(THREADS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    marks = [total // 4, total // 2, 3 * total // 4]
    while any(t.is_alive() for t in threads):
        if marks and sum(done) >= marks[0]:
            gc.collect()
            checkpoints.append({"spans": sum(done), "rss_mb": rss_bytes() / 2**20,
                                "registry": processor.watched_count(), "queued": processor._schedule.pending()})
            marks.pop(0)
        time.sleep(0.05)
    for t in threads:
        t.join()
    time.sleep(0.05)
    gc.collect()
    checkpoints.append({"spans": sum(done), "rss_mb": rss_bytes() / 2**20,
                        "registry": processor.watched_count(), "queued": processor._schedule.pending()})
    elapsed = time.monotonic() - start
    provider.shutdown()
    emit({"memory": {"spans": total, "slow_share": 0.05, "seconds": elapsed, "checkpoints": checkpoints}})


if __name__ == "__main__":
    main()
