//! The `axion-gen` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// Generation allocates millions of short-lived tokens and syntax nodes; with mimalloc a
// googleapis run takes a fifth less time and memory than with the system allocator
// (BENCHMARKS.md, "Latest codegen run").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generate typed Rust services, Kafka clients/dispatchers and Traefik labels from .proto
/// contracts, wire-compatible with NestJS microservices.
///
/// Exit codes: 0 ok, 1 drift (generate --check), 2 bad input or usage.
#[derive(Parser, Debug)]
#[command(name = "axion-gen", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate Rust modules (and Traefik snippets) into an output dir.
    Generate(GenerateArgs),
    /// List every rpc: service, rpc, kind, pattern, reply topic.
    List(ListArgs),
    /// Print the topics the contracts need (request, reply and `.dlq` dead-letter topics), for
    /// clusters that do not auto-create topics.
    Topics(TopicsArgs),
    /// Write an AsyncAPI 3.0 document of the bus (channels, operations, payload schemas).
    Asyncapi(AsyncapiArgs),
    /// Breaking-change check: compare the contracts with a previous version (exit 1 if any).
    Check(CheckArgs),
}

#[derive(Args, Debug)]
struct AsyncapiArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Write the document here (JSON when the name ends in .json, else YAML); default stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write nothing; exit 1 if FILE (--out) differs from what would be written.
    #[arg(long, requires = "out")]
    check: bool,
    /// Print JSON instead of YAML on stdout.
    #[arg(long)]
    json: bool,
    /// Brokers, like KAFKA_BROKERS (comma-separated host:port): one server each.
    #[arg(long, value_name = "BROKERS", default_value = axion_gen::emit::asyncapi::DEFAULT_BROKERS)]
    server: String,
    /// info.version of the document.
    #[arg(long, value_name = "V", default_value = "1.0.0")]
    api_version: String,
    /// Partitions of each topic (Kafka channel binding).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Replicas of each topic (Kafka channel binding).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication: i32,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The previous version's proto dir (the reference), read with the same include dirs.
    #[arg(long, value_name = "REF_DIR")]
    against: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct TopicsArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Partitions of each topic (also the most client instances NestJS callers can use).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Replication factor of each topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication: i32,
    /// Print JSON instead of `name partitions replication` lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct InputArgs {
    /// Every .proto below this dir is a contract; the dir is also the first include dir.
    #[arg(long, value_name = "DIR")]
    proto_dir: Option<PathBuf>,
    /// More include dirs for imports (repeatable).
    #[arg(long = "include", short = 'I', value_name = "DIR")]
    includes: Vec<PathBuf>,
    /// Prefix of default patterns; "" for none. Default: "axion" with the service scheme, none
    /// with the package scheme. A file's `option (axion.file).topic_prefix` wins.
    #[arg(long, value_name = "P")]
    topic_prefix: Option<String>,
    /// How default patterns are formed: "service" is <prefix>.<service>.<rpc>
    /// (axion.graph-service.create-project), "package" is [<prefix>.]<proto
    /// package>.<service>.<rpc> (axion.graph.v1.graph-service.create-project: versions of one API
    /// side by side). A file's `option (axion.file).pattern_scheme` wins.
    #[arg(long, value_name = "SCHEME", value_enum, default_value_t = Scheme::Service)]
    pattern_scheme: Scheme,
    /// Skip client/bidi-streaming rpcs, edition files and copies of well-known types with a
    /// warning instead of failing.
    #[arg(long)]
    skip_unsupported: bool,
    /// Extra .proto files (below the proto dir or an include dir).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// `--pattern-scheme` values ([`axion_gen::PatternScheme`]).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Scheme {
    Service,
    Package,
}

impl InputArgs {
    /// The configuration these flags describe; every command starts from it.
    fn builder(&self) -> axion_gen::Builder {
        let mut builder = axion_gen::configure()
            .pattern_scheme(match self.pattern_scheme {
                Scheme::Service => axion_gen::PatternScheme::Service,
                Scheme::Package => axion_gen::PatternScheme::Package,
            })
            .skip_unsupported(self.skip_unsupported);
        if let Some(dir) = &self.proto_dir {
            builder = builder.proto_dir(dir);
        }
        for dir in &self.includes {
            builder = builder.include(dir);
        }
        for file in &self.files {
            builder = builder.proto_file(file);
        }
        if let Some(prefix) = &self.topic_prefix {
            builder = builder.topic_prefix(prefix);
        }
        builder
    }
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Output dir: gets mod.rs, one <package>.rs per proto package, and traefik/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write nothing; list files that differ from what would be generated (exit 1 if any).
    #[arg(long)]
    check: bool,
    /// Server URL of every traefik/<name>.dynamic.yml, overriding `server_url` options;
    /// `{name}` and `{port}` are replaced (e.g. "http://127.0.0.1:{port}"). Default: the
    /// option, else http://<service name>:<port>.
    #[arg(long, value_name = "URL")]
    traefik_server_url: Option<String>,
    /// Also write TypeScript contracts for NestJS here: one module per proto package
    /// (constants, ts-proto type map, contract), axion-kafka.ts (KafkaOptions helpers), index.ts.
    #[arg(long = "ts", value_name = "DIR")]
    ts: Option<PathBuf>,
    /// Where the TypeScript contracts import ts-proto's types from: ts-proto's output dir
    /// relative to the --ts dir (starting with "."), or a module prefix used as is.
    #[arg(long, value_name = "PATH", default_value = axion_gen::emit::typescript::DEFAULT_TS_PROTO_IMPORT)]
    ts_proto_import: String,
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `println!` into a closed pipe panics; restore the default so a
    // reader that stops early (`| head`) just ends the process, as with any Unix tool.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// The model of the contracts `builder` reads (nothing emitted); its warnings go to stderr.
fn model(builder: &axion_gen::Builder) -> axion_gen::Result<axion_gen::Model> {
    let mut warnings = Vec::new();
    let model = builder.model(&mut warnings);
    for warning in &warnings {
        eprintln!("{warning}");
    }
    model
}

/// Runs the pipeline `builder` describes; its warnings go to stderr.
fn generate(builder: &axion_gen::Builder) -> axion_gen::Result<axion_gen::Generated> {
    let generated = builder.generate()?;
    for warning in &generated.warnings {
        eprintln!("{warning}");
    }
    Ok(generated)
}

fn run(cli: Cli) -> axion_gen::Result<ExitCode> {
    match cli.command {
        Command::Asyncapi(args) => asyncapi(&args),
        Command::Check(args) => check(&args),
        Command::Generate(args) => generate_files(&args),
        Command::Topics(args) => topics(&args),
        Command::List(args) => list(&args),
    }
}

fn generate_files(args: &GenerateArgs) -> axion_gen::Result<ExitCode> {
    let mut builder = args.input.builder().out_dir(&args.out);
    if let Some(url) = &args.traefik_server_url {
        builder = builder.traefik_server_url(url);
    }
    if let Some(dir) = &args.ts {
        builder = builder.ts_out(dir).ts_proto_import(&args.ts_proto_import);
    }
    let generated = generate(&builder)?;
    let outputs = generated.outputs(&args.out);
    let count: usize = outputs.iter().map(|(_, files)| files.len()).sum();
    let dirs: Vec<String> = outputs
        .iter()
        .map(|(d, _)| d.display().to_string())
        .collect();
    if args.check {
        let drift = builder.check(&generated)?;
        if drift.is_empty() {
            eprintln!("{count} files up to date in {}", dirs.join(" and "));
            return Ok(ExitCode::SUCCESS);
        }
        for (path, kind) in &drift {
            println!("{}: {kind:?}", path.display());
        }
        eprintln!(
            "{} file(s) drifted; run without --check to regenerate",
            drift.len()
        );
        return Ok(ExitCode::from(1));
    }
    let written = builder.write(&generated)?.len();
    eprintln!(
        "generated {count} files into {} ({written} changed)",
        dirs.join(" and ")
    );
    Ok(ExitCode::SUCCESS)
}

fn topics(args: &TopicsArgs) -> axion_gen::Result<ExitCode> {
    let topics = model(&args.input.builder())?.topics();
    if args.json {
        let rows: Vec<serde_json::Value> = topics
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t,
                    "partitions": args.partitions,
                    "replication": args.replication,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else {
        for t in topics {
            println!("{t} {} {}", args.partitions, args.replication);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(args: &ListArgs) -> axion_gen::Result<ExitCode> {
    let model = model(&args.input.builder())?;
    let rows: Vec<Row> = model
        .packages
        .iter()
        .flat_map(|p| p.services.iter())
        .flat_map(|s| {
            s.methods.iter().map(move |m| Row {
                service: s.full_name.clone(),
                service_name: s.kafka_name.clone(),
                rpc: m.proto_name.clone(),
                kind: m.kind.as_str(),
                pattern: m.pattern.clone(),
                reply_topic: m.reply_topic.clone(),
                request: m.input_proto.clone(),
                response: m.output_proto.clone(),
            })
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else {
        println!("SERVICE\tRPC\tKIND\tPATTERN\tREPLY TOPIC");
        for r in &rows {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.service,
                r.rpc,
                r.kind,
                r.pattern,
                r.reply_topic.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct Row {
    service: String,
    service_name: String,
    rpc: String,
    kind: &'static str,
    pattern: String,
    reply_topic: Option<String>,
    request: String,
    response: String,
}

fn asyncapi(args: &AsyncapiArgs) -> axion_gen::Result<ExitCode> {
    use axion_gen::emit::asyncapi;
    let model = model(&args.input.builder())?;
    let options = asyncapi::Options {
        api_version: args.api_version.clone(),
        brokers: args.server.clone(),
        partitions: args.partitions,
        replicas: args.replication,
    };
    let doc = asyncapi::emit(&model, &options);
    let as_json = args.json
        || args
            .out
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
    let text = if as_json {
        let mut t = serde_json::to_string_pretty(&doc).expect("the document serializes");
        t.push('\n');
        t
    } else {
        let body = serde_norway::to_string(&doc).expect("the document serializes");
        format!("# AsyncAPI document of the Kafka bus, generated by axion-gen asyncapi. Do not edit.\n{body}")
    };
    let Some(out) = &args.out else {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    };
    if args.check {
        return Ok(match axion_gen::writer::check_file(out, &text) {
            None => {
                eprintln!("{} is up to date", out.display());
                ExitCode::SUCCESS
            }
            Some(kind) => {
                println!("{}: {kind:?}", out.display());
                eprintln!("run without --check to regenerate");
                ExitCode::from(1)
            }
        });
    }
    axion_gen::writer::write_file(out, &text)?;
    eprintln!(
        "wrote {} ({} channels, {} operations, {} schemas)",
        out.display(),
        doc.channels.len(),
        doc.operations.len(),
        doc.components.schemas.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(args: &CheckArgs) -> axion_gen::Result<ExitCode> {
    let findings = args.input.builder().breaking_changes(&args.against)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).expect("findings serialize")
        );
    } else {
        for f in &findings {
            println!("{f}");
        }
    }
    if findings.is_empty() {
        eprintln!("no breaking changes against {}", args.against.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} breaking change(s) against {}",
            findings.len(),
            args.against.display()
        );
        Ok(ExitCode::from(1))
    }
}
