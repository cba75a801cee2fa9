// A real NestJS GraphService peer on the Kafka transport.
// stdout: one JSON line per handled message, and {"ready":true} once it consumes.
import { env, fullProject, kafkaClient, line, PATTERNS, StderrLogger, watchFirstFetch, within } from "./common";

import "reflect-metadata";
import { Controller, Logger, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { EventPattern, KafkaOptions, MessagePattern, Payload, RpcException, ServerKafka } from "@nestjs/microservices";
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
// value. This peer returns Empty ({}) explicitly, like the Rust example service.
@Controller()
class GraphController implements Omit<GraphServiceController, "deleteProject"> {
  /** Insertion-ordered, so listing is oldest first. */
  private readonly projects = new Map<string, Project>();
  private nextId = 1;

  @MessagePattern(PATTERNS.createProject)
  createProject(@Payload() req: CreateProjectRequest): CreateProjectResponse {
    line({ handled: PATTERNS.createProject, name: req.name, request: req });
    if (req.name === "boom") throw new Error("boom");
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

  @MessagePattern(PATTERNS.getProject)
  getProject(@Payload() req: GetProjectRequest): Project {
    line({ handled: PATTERNS.getProject, id: req.id, request: req });
    if (req.id === "full") return fullProject();
    const project = this.projects.get(req.id);
    if (!project) throw rpcError("NOT_FOUND", `project ${req.id} not found`);
    return project;
  }

  @MessagePattern(PATTERNS.listProjects)
  listProjects(@Payload() req: ListProjectsRequest): Observable<Project> {
    line({ handled: PATTERNS.listProjects, request: req });
    const status = req.status ?? ProjectStatus.PROJECT_STATUS_UNSPECIFIED;
    const all = [...this.projects.values()];
    return from(status === ProjectStatus.PROJECT_STATUS_UNSPECIFIED ? all : all.filter((p) => p.status === status));
  }

  @MessagePattern(PATTERNS.deleteProject)
  deleteProject(@Payload() req: DeleteProjectRequest): Empty {
    line({ handled: PATTERNS.deleteProject, id: req.id, request: req });
    if (!this.projects.delete(req.id)) throw rpcError("NOT_FOUND", `project ${req.id} not found`);
    return Empty.fromPartial({});
  }

  @EventPattern(PATTERNS.projectCreated)
  projectCreated(@Payload() event: ProjectCreatedEvent): void {
    line({ event: "project-created", project: event.project ?? null });
  }
}

@Module({ controllers: [GraphController] })
class AppModule {}

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
  const options: KafkaOptions["options"] = {
    client: kafkaClient(env.serverGroup),
    consumer: { groupId: env.serverGroup, maxWaitTimeInMs: env.fetchWaitMs },
  };
  const server = new ReadyServerKafka(options);
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger });
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
