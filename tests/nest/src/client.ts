// A real NestJS ClientKafka caller of the GraphService contract.
// Usage: node dist/client.js <scenario [name] | context NAME | traced NAME | auth TOKEN | full | bench-seq N | bench-par N K |
//                             load N K PREFIX | send-raw <pattern> <json> | emit-raw <pattern> <json>>
// stdout: JSON lines only (see README.md).
import { finishedSpans } from "./tracing";
import { fullProject, kafkaSettings, line, StderrLogger, watchFirstFetch, withLogLevel, within } from "./common";
import { createKafkaClientOptions, withDeadline } from "./contracts/axion-kafka";
import { GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS } from "./contracts/axion/graph/v1";

import "reflect-metadata";
import { Logger } from "@nestjs/common";
import { ClientKafka } from "@nestjs/microservices";
import { firstValueFrom, lastValueFrom, Observable, timeout, toArray } from "rxjs";
import {
  CreateProjectRequest,
  CreateProjectResponse,
  DeleteProjectRequest,
  GetProjectRequest,
  ListProjectsRequest,
  Project,
  ProjectCreatedEvent,
} from "./gen/axion/graph/v1/graph";
import { Empty } from "./gen/google/protobuf/empty";

const SEND_TIMEOUT_MS = 10_000;

/** ClientKafka that also tells when its reply consumer finished the first fetch. */
class ReadyClientKafka extends ClientKafka {
  firstFetch: Promise<void> = new Promise(() => undefined);
  protected override registerConsumerEventListeners(): void {
    super.registerConsumerEventListeners();
    if (this._consumer) this.firstFetch = watchFirstFetch(this._consumer);
  }
}

class Caller {
  constructor(private readonly client: ClientKafka) {}

  private send<T>(pattern: string, data: unknown): Observable<T> {
    return this.client.send<T>(pattern, data).pipe(timeout(SEND_TIMEOUT_MS));
  }
  /** One reply (the last one if several arrive). */
  one<T>(pattern: string, data: unknown): Promise<T> {
    return lastValueFrom(this.send<T>(pattern, data));
  }
  /** Every reply of a streamed response. */
  all<T>(pattern: string, data: unknown): Promise<T[]> {
    return firstValueFrom(this.send<T>(pattern, data).pipe(toArray()));
  }
  async emit(pattern: string, data: unknown): Promise<void> {
    await lastValueFrom(this.client.emit(pattern, data).pipe(timeout(SEND_TIMEOUT_MS)), { defaultValue: undefined });
  }

  createProject(req: CreateProjectRequest): Promise<CreateProjectResponse> {
    return this.one(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT, req);
  }
  getProject(req: GetProjectRequest): Promise<Project> {
    return this.one(GRAPH_SERVICE_PATTERNS.GET_PROJECT, req);
  }
  listProjects(req: ListProjectsRequest): Promise<Project[]> {
    return this.all(GRAPH_SERVICE_PATTERNS.LIST_PROJECTS, req);
  }
  deleteProject(req: DeleteProjectRequest): Promise<Empty> {
    return this.one(GRAPH_SERVICE_PATTERNS.DELETE_PROJECT, req);
  }
  projectCreated(event: ProjectCreatedEvent): Promise<void> {
    return this.emit(GRAPH_SERVICE_PATTERNS.PROJECT_CREATED, event);
  }
}

/** What a rejected send carries: Nest's parsed error object, or an Error (e.g. a timeout). */
function errorValue(err: unknown): unknown {
  if (err instanceof Error) return { thrown: err.name, message: err.message };
  return err;
}

function codeOf(err: unknown): unknown {
  return typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
}

/** JSON with object keys sorted, so two values compare equal regardless of key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

type Check<T> = (value: T) => string | null;

async function scenario(call: Caller, name: string): Promise<boolean> {
  let passed = 0;
  let failed = 0;
  const record = (step: string, good: boolean, body: Record<string, unknown>, why: string | null): void => {
    if (good) passed++;
    else failed++;
    line({ step, ...body, ...(good ? {} : { expected: why }) });
  };
  /** A step that must resolve and pass `check`. */
  async function ok<T>(step: string, run: () => Promise<T>, check: Check<T>): Promise<T | undefined> {
    try {
      const value = await run();
      const why = check(value);
      record(step, why === null, { ok: true, value: value ?? null }, why);
      return value;
    } catch (err) {
      record(step, false, { ok: false, error: errorValue(err) }, "a reply");
      return undefined;
    }
  }
  /** A step that must be rejected with error code `code`. */
  async function rejects(step: string, run: () => Promise<unknown>, code: string): Promise<void> {
    try {
      const value = await run();
      record(step, false, { ok: true, value: value ?? null }, `a rejection with code ${code}`);
    } catch (err) {
      const e = errorValue(err);
      record(step, codeOf(e) === code, { ok: false, error: e }, `a rejection with code ${code}`);
    }
  }

  const labels = { team: "core", env: "test" };
  const description = `the ${name} project`;
  const created = await ok(
    "create",
    () => call.createProject({ name, description, labels }),
    (v) =>
      v?.project && typeof v.project.id === "string" && v.project.id !== "" && v.project.name === name &&
      v.project.description === description && sameJson(v.project.labels, labels)
        ? null
        : `{project} with an id, name ${name}, the description and labels`,
  );
  const project = created?.project;
  await rejects("duplicate", () => call.createProject({ name, description: "again", labels: {} }), "ALREADY_EXISTS");
  await rejects("get-missing", () => call.getProject({ id: "missing-id" }), "NOT_FOUND");
  await ok(
    "get",
    () => call.getProject({ id: project?.id ?? "no-project-created" }),
    (v) => (sameJson(v, project) ? null : "the created project, unchanged"),
  );
  await ok(
    "list",
    () => call.listProjects({ status: 0 }),
    (v) => (Array.isArray(v) && v.some((p) => p?.id === project?.id && p?.name === name) ? null : `a list including ${name}`),
  );
  await ok(
    "emit",
    () => call.projectCreated({ project: fullProject() }),
    () => null,
  );
  await ok(
    "delete",
    () => call.deleteProject({ id: project?.id ?? "no-project-created" }),
    () => null,
  );
  line({ done: true, passed, failed });
  return failed === 0;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? 0;
}

const round = (x: number): number => Math.round(x * 100) / 100;

async function bench(call: Caller, n: number, k: number): Promise<boolean> {
  const prefix = `bench-${process.pid}-${Date.now()}`;
  // Warm-up (not measured): metadata, connections, first fetches. A failure here is reported
  // on stderr, not fatal: on tansu the Nest server has been seen to handle its very first
  // request twice (a rejoin right after its first fetch) and answer the second ALREADY_EXISTS.
  for (let i = 0; i < 3; i++) {
    try {
      await call.createProject({ name: `${prefix}-warm-${i}`, description: "", labels: {} });
    } catch (err) {
      process.stderr.write(`bench warm-up ${i} failed: ${JSON.stringify(errorValue(err))}\n`);
    }
  }
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  async function worker(): Promise<void> {
    while (next < n) {
      const i = next++;
      const t0 = performance.now();
      try {
        await call.createProject({ name: `${prefix}-${i}`, description: "", labels: {} });
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(k, n)) }, () => worker()));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  line({
    requests: n,
    concurrency: k,
    errors,
    seconds: round(seconds),
    rps: round(n / seconds),
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
  });
  return errors === 0;
}

/** A call of `load` may wait through a rolling restart of the servers. */
const LOAD_TIMEOUT_MS = 60_000;

/**
 * `load N K PREFIX`: N CreateProject calls named PREFIX0..PREFIX(N-1), K at a time, each with
 * a long timeout. One JSON line per call: `{name, ok, description}` or `{name, ok, error}`.
 */
async function load(client: ClientKafka, n: number, k: number, prefix: string): Promise<boolean> {
  let next = 0;
  let failed = 0;
  async function worker(): Promise<void> {
    while (next < n) {
      const name = `${prefix}${next++}`;
      try {
        const reply = await lastValueFrom(
          client
            .send<CreateProjectResponse>(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT, { name, description: "", labels: {} })
            .pipe(timeout(LOAD_TIMEOUT_MS)),
        );
        line({ name, ok: true, description: reply.project?.description ?? "" });
      } catch (err) {
        failed++;
        line({ name, ok: false, error: errorValue(err) });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(k, n)) }, () => worker()));
  line({ done: true, sent: n, failed });
  return failed === 0;
}

function positiveInt(raw: string | undefined, what: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what} must be a positive integer, got ${raw}`);
  return n;
}

/** The payload argument: parsed as JSON, or sent as a plain string when it is not JSON. */
function parsePayload(raw: string | undefined): unknown {
  if (raw === undefined) throw new Error("missing payload argument");
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Per-call key, headers and deadlines (`withDeadline`): a keyed create with a header and a
 *  5 s deadline, then one whose deadline passed a second ago. One line per step. */
async function context(client: ClientKafka, name: string): Promise<boolean> {
  const create = (value: unknown): Promise<CreateProjectResponse> =>
    lastValueFrom(client.send<CreateProjectResponse>(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT, value).pipe(timeout(SEND_TIMEOUT_MS)));
  let good = true;
  try {
    const reply = await create(withDeadline({ name }, 5_000, { key: `key-${name}`, headers: { "x-tenant": "acme" } }));
    line({ step: "keyed", ok: true, reply });
  } catch (err) {
    good = false;
    line({ step: "keyed", ok: false, error: errorValue(err) });
  }
  try {
    const reply = await create(withDeadline({ name: `${name}-late` }, -1_000));
    good = false;
    line({ step: "late", ok: true, reply });
  } catch (err) {
    line({ step: "late", ok: false, error: errorValue(err) });
  }
  return good;
}

/** One create-project call, then the spans this process finished (AXION_OTEL=1). */
async function traced(client: ClientKafka, name: string): Promise<boolean> {
  const send = client.send<CreateProjectResponse>(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT, { name });
  const reply = await lastValueFrom(send.pipe(timeout(SEND_TIMEOUT_MS)));
  line({ step: "traced", ok: true, reply });
  // The reply consumer's span ends after the reply was handed over.
  await new Promise((resolve) => setTimeout(resolve, 200));
  line({ spans: finishedSpans() });
  return true;
}

/** Requests through an authenticating middleware: without credentials, with a wrong token,
 *  with `authorization: Bearer TOKEN` in the envelope's headers. One line per step. */
async function auth(client: ClientKafka, token: string): Promise<boolean> {
  const steps: [string, unknown][] = [
    ["none", { name: "auth-none" }],
    ["wrong", { value: { name: "auth-wrong" }, headers: { authorization: "Bearer nope" } }],
    ["bearer", { value: { name: "auth-bearer" }, headers: { authorization: `Bearer ${token}` } }],
  ];
  for (const [step, value] of steps) {
    try {
      const send = client.send<CreateProjectResponse>(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT, value);
      line({ step, ok: true, reply: await lastValueFrom(send.pipe(timeout(SEND_TIMEOUT_MS))) });
    } catch (err) {
      line({ step, ok: false, error: errorValue(err) });
    }
  }
  return true;
}

const USAGE =
  "usage: node dist/client.js scenario [name] | context NAME | traced NAME | auth TOKEN | full | bench-seq N | bench-par N K | load N K PREFIX | send-raw <pattern> <json> | emit-raw <pattern> <json>";

async function main(): Promise<number> {
  const [command, a1, a2, a3] = process.argv.slice(2);
  if (!command) throw new Error(USAGE);

  const logger = new StderrLogger();
  Logger.overrideLogger(logger);
  const options = withLogLevel(createKafkaClientOptions(kafkaSettings()));
  const client = new ReadyClientKafka(options);
  const patterns = new Set<string>(GRAPH_SERVICE_CONTRACT.requestPatterns);
  if (command === "send-raw" && a1) patterns.add(a1);
  for (const p of patterns) client.subscribeToResponseOf(p);

  await client.connect();
  try {
    await within(client.firstFetch, 30_000, "first fetch of the reply consumer");
    const call = new Caller(client);
    switch (command) {
      case "scenario":
        return (await scenario(call, a1 ?? "alpha")) ? 0 : 1;
      case "auth":
        if (!a1) throw new Error(USAGE);
        return (await auth(client, a1)) ? 0 : 1;
      case "traced":
        if (!a1) throw new Error(USAGE);
        return (await traced(client, a1)) ? 0 : 1;
      case "context":
        if (!a1) throw new Error(USAGE);
        return (await context(client, a1)) ? 0 : 1;
      case "full":
        try {
          line(await call.getProject({ id: "full" }));
          return 0;
        } catch (err) {
          line({ ok: false, error: errorValue(err) });
          return 1;
        }
      case "bench-seq":
        return (await bench(call, positiveInt(a1, "N"), 1)) ? 0 : 1;
      case "bench-par":
        return (await bench(call, positiveInt(a1, "N"), positiveInt(a2, "K"))) ? 0 : 1;
      case "load":
        if (!a3) throw new Error(USAGE);
        return (await load(client, positiveInt(a1, "N"), positiveInt(a2, "K"), a3)) ? 0 : 1;
      case "send-raw": {
        if (!a1) throw new Error(USAGE);
        try {
          line({ ok: true, values: await call.all<unknown>(a1, parsePayload(a2)) });
          return 0;
        } catch (err) {
          line({ ok: false, error: errorValue(err) });
          return 1;
        }
      }
      case "emit-raw":
        if (!a1) throw new Error(USAGE);
        await call.emit(a1, parsePayload(a2));
        line({ ok: true, emitted: a1 });
        return 0;
      default:
        throw new Error(USAGE);
    }
  } finally {
    await client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A rejection may be a plain object (a Nest error reply): print it, not "[object Object]".
    const text = err instanceof Error ? (err.stack ?? err.message) : JSON.stringify(err);
    process.stderr.write(`client failed: ${text}\n`);
    process.exit(2);
  },
);
