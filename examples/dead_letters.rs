//! Lists a pattern's dead letters and re-drives selected ones to the topic they came from
//! (`axion_runtime::kafka::dead_letters`). Reads the stack's `KAFKA_*` variables.
//!
//! ```text
//! cargo run --example dead_letters -- list axion.graph-service.project-created
//! cargo run --example dead_letters -- redrive axion.graph-service.project-created 0/3 1/0
//! cargo run --example dead_letters -- redrive axion.graph-service.project-created --all
//! ```

use std::process::ExitCode;

use axion_runtime::kafka::dead_letters::{self, DeadLetter};
use axion_runtime::kafka::KafkaConfig;
use clap::{Parser, Subcommand};

/// Dead letters of one pattern (`<pattern>.dlq`).
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per dead letter: where it is (partition/offset), why, and what it was.
    List {
        /// The pattern (request or event topic) whose dead letters to read.
        pattern: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Sends the selected dead letters back to their topic, headers kept.
    Redrive {
        /// The pattern whose dead letters to re-drive.
        pattern: String,
        /// `partition/offset` of each letter, as `list` prints them.
        #[arg(required_unless_present = "all")]
        selected: Vec<String>,
        /// Every dead letter of the pattern.
        #[arg(long, conflicts_with = "selected")]
        all: bool,
    },
}

fn line(letter: &DeadLetter) -> String {
    let key = letter
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let again = letter
        .redriven_from
        .as_deref()
        .map(|from| format!("\tredriven-from={from}"))
        .unwrap_or_default();
    format!(
        "{}/{}\treason={}\tattempts={}\tkey={key}{again}\terror={}",
        letter.partition, letter.offset, letter.reason, letter.attempts, letter.error
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dead_letters: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let config = KafkaConfig::from_env()?;
    match cli.command {
        Command::List { pattern, limit } => {
            let letters = dead_letters::list(&config, &pattern, limit).await?;
            for letter in &letters {
                println!("{}", line(letter));
            }
            eprintln!("{} dead letter(s) of {pattern}", letters.len());
        }
        Command::Redrive {
            pattern,
            selected,
            all,
        } => {
            let letters = dead_letters::list(&config, &pattern, usize::MAX).await?;
            let chosen: Vec<DeadLetter> = if all {
                letters
            } else {
                let mut chosen = Vec::new();
                for want in &selected {
                    let found = letters
                        .iter()
                        .find(|l| format!("{}/{}", l.partition, l.offset) == *want)
                        .ok_or_else(|| format!("no dead letter {want} in {pattern}.dlq"))?;
                    chosen.push(found.clone());
                }
                chosen
            };
            let sent = dead_letters::redrive(&config, &chosen).await?;
            for letter in &chosen {
                println!("re-driven {}", line(letter));
            }
            eprintln!("{sent} dead letter(s) re-driven to their topic");
        }
    }
    Ok(())
}
