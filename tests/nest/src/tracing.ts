// OpenTelemetry for the peer, on with AXION_OTEL=1: kafkajs instrumented by
// @opentelemetry/instrumentation-kafkajs (a "send <topic>" producer span per record, a
// "process <topic>" consumer span per handled message, W3C traceparent injected and extracted),
// spans kept by an in-memory exporter. Imported first, before anything loads kafkajs.
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { KafkaJsInstrumentation } from "@opentelemetry/instrumentation-kafkajs";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const exporter = process.env.AXION_OTEL === "1" ? new InMemorySpanExporter() : undefined;
if (exporter) {
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
  registerInstrumentations({ instrumentations: [new KafkaJsInstrumentation()] });
}

/** One finished span, as the tests compare them. */
export interface SpanLine {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
}

/** Every span finished so far (none without AXION_OTEL=1). */
export function finishedSpans(): SpanLine[] {
  return (exporter?.getFinishedSpans() ?? []).map((s) => ({
    name: s.name,
    kind: s.kind,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? null,
  }));
}
