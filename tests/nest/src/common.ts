// Shared by server.ts, client.ts and topics.ts: environment, patterns, logging, fixtures.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";

import { LoggerService } from "@nestjs/common";
import { logLevel } from "kafkajs";
import { Project, ProjectStatus } from "./gen/axion/graph/v1/graph";
// The contract's names, groups and Kafka options come from axion-gen's TypeScript output
// (src/contracts links to ../../../generated/ts), generated from the same protos as the Rust side.
import { contractTopics, KafkaSettings, KafkaTransportOptions, readKafkaSettings } from "./contracts/axion-kafka";
import { GRAPH_SERVICE_CONTRACT } from "./contracts/axion/graph/v1";

/** Every topic the contract needs: all request topics plus the reply topics. */
export const ALL_TOPICS: readonly string[] = contractTopics(GRAPH_SERVICE_CONTRACT);

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

export const env = {
  /** KAFKA_BROKERS: comma-separated host:port list. */
  brokers: (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092")
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b !== ""),
  /** NEST_GROUP: server clientId/groupId (Nest appends "-server"); default the service name. */
  serverGroup: process.env.NEST_GROUP || undefined,
  /** NEST_CLIENT_GROUP: client clientId/groupId (Nest appends "-client"). */
  clientGroup: process.env.NEST_CLIENT_GROUP || "graph-caller",
  /** FETCH_WAIT_MS: consumer.maxWaitTimeInMs (tansu holds a fetch for about half of it). */
  fetchWaitMs: intEnv("FETCH_WAIT_MS", 1),
  /** NEST_DEBUG=1: kafkajs INFO logs and Nest debug logs (stderr). */
  debug: process.env.NEST_DEBUG === "1",
  /** TOPIC_PARTITIONS: partitions per topic created by topics.ts. */
  topicPartitions: intEnv("TOPIC_PARTITIONS", 3),
};

/** The Rust runtime's Kafka settings (KAFKA_* variables) with this harness's knobs mapped onto
 *  them: KAFKA_BROKERS, NEST_GROUP -> KAFKA_GROUP_ID, NEST_CLIENT_GROUP -> KAFKA_CLIENT_ID,
 *  FETCH_WAIT_MS -> KAFKA_FETCH_WAIT_MS. */
export function kafkaSettings(): KafkaSettings {
  return readKafkaSettings({
    ...process.env,
    KAFKA_BROKERS: env.brokers.join(","),
    KAFKA_GROUP_ID: env.serverGroup,
    KAFKA_CLIENT_ID: env.clientGroup,
    KAFKA_FETCH_WAIT_MS: String(env.fetchWaitMs),
  });
}

/** Generated options with kafkajs logging below WARN only with NEST_DEBUG=1. */
export function withLogLevel(transport: KafkaTransportOptions): KafkaTransportOptions["options"] {
  const { options } = transport;
  return { ...options, client: { ...options.client, logLevel: env.debug ? logLevel.INFO : logLevel.WARN } };
}

/** Prints one JSON line on stdout (the only thing written to stdout). */
export function line(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

/** Nest and kafkajs logs go to stderr so stdout stays machine-readable. NEST_DEBUG=1 adds debug. */
export class StderrLogger implements LoggerService {
  private readonly debugOn = env.debug;
  private write(level: string, message: unknown, rest: unknown[]): void {
    const context = rest.length > 0 ? rest[rest.length - 1] : undefined;
    const text = message instanceof Error ? (message.stack ?? message.message) : typeof message === "string" ? message : JSON.stringify(message);
    process.stderr.write(`[nest] ${level} ${typeof context === "string" ? `[${context}] ` : ""}${text}\n`);
  }
  log(message: unknown, ...rest: unknown[]): void {
    this.write("LOG", message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write("ERROR", message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write("WARN", message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    if (this.debugOn) this.write("DEBUG", message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    if (this.debugOn) this.write("VERBOSE", message, rest);
  }
}

/** 2024-05-01T12:00:00.000Z */
export const FULL_CREATED_AT_SECONDS = Date.UTC(2024, 4, 1, 12, 0, 0) / 1000;

/** A Project with every field kind set, built the way a ts-proto peer builds it. */
export function fullProject(): Project {
  return Project.fromPartial({
    id: "full",
    name: "full-project",
    description: "every field kind set",
    labels: { team: "core", tier: "gold" },
    status: ProjectStatus.PROJECT_STATUS_ARCHIVED,
    createdAt: { seconds: FULL_CREATED_AT_SECONDS, nanos: 0 },
    sizeBytes: 1234567890123,
    checksum: new Uint8Array([0, 1, 2, 255]),
    git: { url: "https://git.example/axion.git", revision: "main" },
    tags: ["a", "b"],
  });
}

interface EventfulConsumer {
  events: { FETCH: string };
  on(event: string, listener: () => void): () => void;
}

/** Resolves when a kafkajs consumer finished its first fetch: its start offsets are resolved, so
 *  nothing produced from then on can be skipped by a "latest" start (fromBeginning=false). */
export function watchFirstFetch(consumer: EventfulConsumer): Promise<void> {
  return new Promise((resolve) => {
    const remove = consumer.on(consumer.events.FETCH, () => {
      remove();
      resolve();
    });
  });
}

/** Rejects after ms with a message. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
