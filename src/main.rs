//! The `axion-gen` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    /// Prefix of default patterns (<prefix>.<service>.<rpc>); "" for none. A file's
    /// `option (axion.file).topic_prefix` wins.
    #[arg(long, value_name = "P", default_value = axion_gen::DEFAULT_TOPIC_PREFIX)]
    topic_prefix: String,
    /// Skip client/bidi-streaming rpcs, edition files and copies of well-known types with a
    /// warning instead of failing.
    #[arg(long)]
    skip_unsupported: bool,
    /// Extra .proto files (below the proto dir or an include dir).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
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
    #[arg(long, value_name = "PATH", default_value = "../gen")]
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

fn generate(
    input: &InputArgs,
    server_url: Option<&str>,
) -> axion_gen::Result<axion_gen::Generated> {
    generate_with(input, server_url, |b| b)
}

fn generate_with(
    input: &InputArgs,
    server_url: Option<&str>,
    more: impl FnOnce(axion_gen::Builder) -> axion_gen::Builder,
) -> axion_gen::Result<axion_gen::Generated> {
    let mut builder = axion_gen::configure()
        .topic_prefix(input.topic_prefix.clone())
        .skip_unsupported(input.skip_unsupported);
    if let Some(url) = server_url {
        builder = builder.traefik_server_url(url);
    }
    let builder = more(builder);
    let inputs = axion_gen::Inputs {
        proto_dir: input.proto_dir.clone(),
        files: input.files.clone(),
        includes: input.includes.clone(),
        skip_unsupported: input.skip_unsupported,
    };
    let generated = builder.generate(&inputs)?;
    for warning in &generated.warnings {
        eprintln!("{warning}");
    }
    Ok(generated)
}

fn run(cli: Cli) -> axion_gen::Result<ExitCode> {
    match cli.command {
        Command::Asyncapi(args) => asyncapi(&args),
        Command::Check(args) => check(&args),
        Command::Generate(args) => {
            let generated =
                generate_with(
                    &args.input,
                    args.traefik_server_url.as_deref(),
                    |b| match &args.ts {
                        Some(dir) => b.ts_out(dir).ts_proto_import(&args.ts_proto_import),
                        None => b,
                    },
                )?;
            let outputs = generated.outputs(&args.out);
            let count: usize = outputs.iter().map(|(_, files)| files.len()).sum();
            let dirs: Vec<String> = outputs
                .iter()
                .map(|(d, _)| d.display().to_string())
                .collect();
            if args.check {
                let mut drift = Vec::new();
                for (dir, files) in &outputs {
                    for (path, kind) in axion_gen::writer::check(dir, files)? {
                        drift.push((dir.join(path), kind));
                    }
                }
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
            let mut written = 0;
            for (dir, files) in &outputs {
                written += axion_gen::writer::write(dir, files)?.len();
            }
            eprintln!(
                "generated {count} files into {} ({written} changed)",
                dirs.join(" and ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics(args) => {
            let generated = generate(&args.input, None)?;
            // The same set as the runtime's `ensure_topics`: servers dead-letter poison
            // messages to `<pattern>.dlq`.
            let mut topics: Vec<String> = generated
                .model
                .packages
                .iter()
                .flat_map(|p| p.services.iter())
                .flat_map(|s| s.methods.iter())
                .flat_map(|m| {
                    let reply = (m.kind != axion_gen::model::MethodKind::Event)
                        .then(|| m.reply_topic.clone());
                    [m.pattern.clone(), m.dlq_topic.clone()]
                        .into_iter()
                        .chain(reply)
                })
                .collect();
            topics.sort_unstable();
            topics.dedup();
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
        Command::List(args) => {
            let generated = generate(&args.input, None)?;
            let rows: Vec<Row> = generated
                .model
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
                        reply_topic: (m.kind != axion_gen::model::MethodKind::Event)
                            .then(|| m.reply_topic.clone()),
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
    }
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
    let generated = generate(&args.input, None)?;
    let options = asyncapi::Options {
        api_version: args.api_version.clone(),
        brokers: args.server.clone(),
        partitions: args.partitions,
        replicas: args.replication,
    };
    let doc = asyncapi::emit(&generated.model, &options);
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
    let existing = std::fs::read_to_string(out).ok();
    if args.check {
        if existing.as_deref() == Some(text.as_str()) {
            eprintln!("{} is up to date", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        let kind = if existing.is_some() {
            "Changed"
        } else {
            "Missing"
        };
        println!("{}: {kind}", out.display());
        eprintln!("run without --check to regenerate");
        return Ok(ExitCode::from(1));
    }
    if existing.as_deref() != Some(text.as_str()) {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| axion_gen::Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(out, &text).map_err(|source| axion_gen::Error::Io {
            path: out.clone(),
            source,
        })?;
    }
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
    let input = &args.input;
    let new = axion_gen::Inputs {
        proto_dir: input.proto_dir.clone(),
        files: input.files.clone(),
        includes: input.includes.clone(),
        skip_unsupported: input.skip_unsupported,
    };
    let reference = axion_gen::Inputs {
        proto_dir: Some(args.against.clone()),
        files: Vec::new(),
        includes: input.includes.clone(),
        skip_unsupported: input.skip_unsupported,
    };
    let options = axion_gen::model::ModelOptions {
        topic_prefix: input.topic_prefix.clone(),
        skip_unsupported: input.skip_unsupported,
    };
    let findings = axion_gen::breaking::check(&new, &reference, &options)?;
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
