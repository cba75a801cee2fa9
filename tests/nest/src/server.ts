// A real NestJS GraphService peer on the Kafka transport.
// stdout: one JSON line per handled message, and {"ready":true} once it consumes.
// NEST_ROLE=events: only the ProjectCreated event handler (subscribes to nothing else).
import { finishedSpans } from "./tracing";
import { fullProject, kafkaSettings, line, StderrLogger, watchFirstFetch, withLogLevel, within } from "./common";
import { createKafkaServerOptions, deadlineOf } from "./contracts/axion-kafka";
import { GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS } from "./contracts/axion/graph/v1";

import "reflect-metadata";
import { Controller, Logger, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { Ctx, EventPattern, KafkaContext, MessagePattern, Payload, RpcException, ServerKafka } from "@nestjs/microservices";
import { from, Observable } from "rxjs";
import { Empty } from "./gen/google/protobuf/empty";
import {
  CreateProjectRequest,
  CreateProjectResponse,
  DeleteProjectRequest,
  GetProjectRequest,
  GraphServiceController,
  ListProjectsRequest,
  Project,
  ProjectCreatedEvent,
  ProjectStatus,
} from "./gen/axion/graph/v1/graph";

function rpcError(code: string, message: string): RpcException {
  return new RpcException({ status: "error", code, message });
}

function now(): { seconds: number; nanos: number } {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

// ts-proto types an Empty result as void; a void Nest handler replies with an empty (null) Kafka
// value. This peer returns Empty ({}) explicitly, like the Rust example service. createProject
// also takes the KafkaContext (ts-proto's controller interface has the payload only).
@Controller()
class GraphController implements Omit<GraphServiceController, "deleteProject" | "createProject"> {
  /** Insertion-ordered, so listing is oldest first. */
  private readonly projects = new Map<string, Project>();
  private nextId = 1;

  @MessagePattern(GRAPH_SERVICE_PATTERNS.CREATE_PROJECT)
  createProject(@Payload() req: CreateProjectRequest, @Ctx() ctx: KafkaContext): CreateProjectResponse {
    const message = ctx.getMessage();
    line({
      handled: GRAPH_SERVICE_PATTERNS.CREATE_PROJECT,
      name: req.name,
      request: req,
      key: message.key?.toString() ?? null,
      tenant: message.headers?.["x-tenant"]?.toString() ?? null,
      deadline: deadlineOf(message.headers) ?? null,
      // kafkajs gives a repeated header as an array: toString() would show both.
      traceparent: message.headers?.["traceparent"]?.toString() ?? null,
    });
    if (req.name === "boom") throw new Error("boom");
    // What a class-validator pipe with a custom exceptionFactory throws: a numeric code and a
    // message array.
    if (req.name === "invalid") {
      throw new RpcException({ status: "error", code: 3, message: ["name is reserved", "name is too short"] });
    }
    for (const p of this.projects.values()) {
      if (p.name === req.name) throw rpcError("ALREADY_EXISTS", `project ${req.name} already exists`);
    }
    const project = Project.fromPartial({
      id: `proj-${this.nextId++}`,
      name: req.name,
      description: req.description,
      labels: req.labels,
      status: ProjectStatus.PROJECT_STATUS_ACTIVE,
      createdAt: now(),
    });
    this.projects.set(project.id, project);
    return CreateProjectResponse.fromPartial({ project });
  }

  @MessagePattern(GRAPH_SERVICE_PATTERNS.GET_PROJECT)
  getProject(@Payload() req: GetProjectRequest): Project {
    line({ handled: GRAPH_SERVICE_PATTERNS.GET_PROJECT, id: req.id, request: req });
    if (req.id === "full") return fullProject();
    const project = this.projects.get(req.id);
    if (!project) throw rpcError("NOT_FOUND", `project ${req.id} not found`);
    return project;
  }

  @MessagePattern(GRAPH_SERVICE_PATTERNS.LIST_PROJECTS)
  listProjects(@Payload() req: ListProjectsRequest): Observable<Project> {
    line({ handled: GRAPH_SERVICE_PATTERNS.LIST_PROJECTS, request: req });
    const status = req.status ?? ProjectStatus.PROJECT_STATUS_UNSPECIFIED;
    const all = [...this.projects.values()];
    return from(status === ProjectStatus.PROJECT_STATUS_UNSPECIFIED ? all : all.filter((p) => p.status === status));
  }

  @MessagePattern(GRAPH_SERVICE_PATTERNS.DELETE_PROJECT)
  deleteProject(@Payload() req: DeleteProjectRequest): Empty {
    line({ handled: GRAPH_SERVICE_PATTERNS.DELETE_PROJECT, id: req.id, request: req });
    if (!this.projects.delete(req.id)) throw rpcError("NOT_FOUND", `project ${req.id} not found`);
    return Empty.fromPartial({});
  }

  @EventPattern(GRAPH_SERVICE_PATTERNS.PROJECT_CREATED)
  projectCreated(@Payload() event: ProjectCreatedEvent): void {
    line({ event: "project-created", project: event.project ?? null });
  }
}

/** The events role: a service that only listens to ProjectCreated, and prints the spans this
 *  process finished (AXION_OTEL=1) shortly after each event. */
@Controller()
class EventsController {
  @EventPattern(GRAPH_SERVICE_PATTERNS.PROJECT_CREATED)
  projectCreated(@Payload() event: ProjectCreatedEvent): void {
    line({ event: "project-created", project: event.project ?? null });
    setTimeout(() => line({ spans: finishedSpans() }), 200);
  }
}

@Module({ controllers: [GraphController] })
class AppModule {}

@Module({ controllers: [EventsController] })
class EventsModule {}

/** ServerKafka (the class `transport: Transport.KAFKA` instantiates) that also tells when its
 *  consumer finished the first fetch; identical on the wire. */
class ReadyServerKafka extends ServerKafka {
  firstFetch: Promise<void> = new Promise(() => undefined);
  protected override registerConsumerEventListeners(): void {
    super.registerConsumerEventListeners();
    if (this.consumer) this.firstFetch = watchFirstFetch(this.consumer);
  }
}

async function main(): Promise<void> {
  const logger = new StderrLogger();
  Logger.overrideLogger(logger);
  // Group <NEST_GROUP or graph-service>-server, like the Rust server. A new group starts at the
  // end here (not the generated earliest): benchmarks reuse a broker whose topics hold an
  // earlier run's requests, and "ready" already means "nothing sent from now on is skipped".
  const options = withLogLevel(createKafkaServerOptions(GRAPH_SERVICE_CONTRACT, kafkaSettings()));
  const server = new ReadyServerKafka({ ...options, subscribe: { fromBeginning: false } });
  const module = process.env.NEST_ROLE === "events" ? EventsModule : AppModule;
  const app = await NestFactory.createMicroservice(module, { strategy: server, logger });
  // SIGTERM/SIGINT: leave the group cleanly (a member that just vanishes blocks its group's next
  // member for a session timeout), but never hang: a stuck handler keeps app.close() waiting.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      setTimeout(() => process.exit(1), 5_000).unref();
      app.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
  await app.listen();
  await within(server.firstFetch, 30_000, "first fetch");
  line({ ready: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`server failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
