//! The command line's face: the clap types ([`cli`]) and one handler per
//! subcommand, which turns flags into the stages' own option types, runs
//! the stage and prints its result. No stage imports clap types; the binary
//! (`main.rs`) only parses, calls [`run`] and maps the error to an exit code
//! ([`exit_code`]).

pub mod cli;
pub mod doctor;
mod inspect;
mod measure;
mod serve;
mod setup;

use anyhow::Context;

use crate::corpus::{self, import::ImportOptions};
use cli::{Cli, Command, CorpusCommand};

/// Run the command `cli` names.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = cli.quiet;
    crate::platform::webdriver::reap_left_behind();
    match cli.command {
        Command::Corpus(CorpusCommand::Index { corpus }) => {
            let s = corpus::index::build(&corpus.dir, quiet)
                .with_context(|| format!("indexing corpus {}", corpus.dir.display()))?;
            println!(
                "{}: {} rows ({} hashed, {} unchanged)",
                corpus.dir.join(corpus::index::INDEX_FILE).display(),
                s.rows,
                s.hashed,
                s.unchanged
            );
        }
        Command::Corpus(CorpusCommand::Variants {
            corpus,
            transforms,
            items,
            seed,
        }) => {
            let ts = corpus::transform::parse_specs(&transforms)?;
            let r = corpus::variants::make(&corpus.dir, &ts, &items, seed, quiet)
                .with_context(|| format!("making variants in {}", corpus.dir.display()))?;
            for l in &r.made {
                println!("{}\t{}\t{}", l.variant_id, l.transform, l.path);
            }
            eprintln!(
                "{} variants written under {}; {} item/transform pairs did not fit and were skipped",
                r.made.len(),
                corpus.dir.join(corpus::variants::VARIANTS_DIR).display(),
                r.skipped
            );
        }
        Command::Corpus(CorpusCommand::Import {
            corpus,
            folder,
            label,
            topic,
            source,
            lang,
            notes,
        }) => {
            let opts = ImportOptions {
                label,
                topic,
                source,
                lang,
                notes,
            };
            let r = corpus::import::import(&corpus.dir, &folder, &opts, quiet)
                .with_context(|| format!("importing {}", folder.display()))?;
            for (id, path) in &r.added {
                println!("added\t{id}\t{path}");
            }
            for (path, dup) in &r.duplicates {
                println!(
                    "skipped-duplicate\t{}\tsame content as {dup}",
                    path.display()
                );
            }
            for path in &r.unsupported {
                println!("skipped-unsupported\t{}", path.display());
            }
            if r.created {
                eprintln!(
                    "a new corpus: {} made",
                    corpus.dir.join(corpus::manifest::MANIFEST_FILE).display()
                );
            }
            eprintln!(
                "{} added, {} duplicates skipped, {} unsupported files skipped",
                r.added.len(),
                r.duplicates.len(),
                r.unsupported.len()
            );
        }
        Command::Testbed(args) => serve::testbed(args)?,
        Command::Xmpp(args) => serve::xmpp(args)?,
        Command::Send(args) => measure::send(args)?,
        Command::Login(args) => measure::login(args)?,
        Command::Analyze(args) => inspect::analyze(args)?,
        Command::Plan(args) => inspect::plan(args)?,
        Command::Designs => inspect::designs(),
        Command::Run(args) => return measure::run_spec(args, quiet),
        Command::Runs(args) => inspect::runs(args)?,
        Command::Schedule(cmd) => measure::schedule(cmd)?,
        Command::Changes(args) => {
            use crate::analysis::changes;
            let c = changes::compare(&args.run_a, &args.run_b, crate::stats::Interval::Wilson)?;
            if c.b_before_a {
                eprintln!(
                    "warning: {} started before {}: the changes read backwards in time (give the earlier run first)",
                    c.run_b, c.run_a
                );
            }
            let out = args
                .out
                .unwrap_or_else(|| args.run_b.join(changes::CHANGES_FILE));
            c.write(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", c.summary());
            eprintln!("{} rows in {}", c.rows.len(), out.display());
        }
        Command::Merge(args) => {
            let o = crate::dataset::merge::MergeOptions {
                results: args.results,
                spec: args.spec,
                out: args.out,
            };
            let s = crate::dataset::merge::merge(&o)
                .map_err(|e| match e {
                    // Bad input stays an InputError in the chain (exit 2).
                    crate::dataset::merge::MergeError::Input(i) => anyhow::Error::new(i),
                    other => anyhow::Error::new(other),
                })
                .with_context(|| format!("merging into {}", o.out.display()))?;
            println!(
                "{}: {} runs, {} sends, {} trials{}",
                o.out.display(),
                s.runs,
                s.sends,
                s.trials,
                if s.duplicates > 0 {
                    format!(" (duplicate copies of runs merged once: {})", s.duplicates)
                } else {
                    String::new()
                }
            );
        }
        Command::Doctor(args) => setup::doctor(args)?,
        Command::Completions(args) => setup::completions(args)?,
        Command::Man(args) => setup::man(args)?,
    }
    Ok(())
}

/// Ctrl-C and SIGTERM, listened for from the moment this is called (inside
/// a runtime), not from the moment the returned future is first polled: a
/// signal during start-up (sessions opening, the testbed starting) is kept
/// and stops the run as soon as it can look. A second signal ends the
/// process at once (exit 130): the journal has every intent, and a resume
/// settles the sends in flight by looking.
pub(crate) fn run_interrupt() -> impl std::future::Future<Output = ()> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Created here, so registered now.
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::spawn(async move {
            for n in 0.. {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if n == 0 {
                    let _ = tx.send(true);
                } else {
                    eprintln!(
                        "stopped at once (a second signal); continue with: chatprobe run --resume RUN_FOLDER (`chatprobe runs` lists it)"
                    );
                    std::process::exit(crate::error::EXIT_INTERRUPTED);
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    async move {
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The exit code for an error chain — the one place they are decided (the
/// face's job: it may look at any stage's error types): 130
/// when interrupted, 2 when any link is bad input, else 1 (0 is success).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    use crate::error::{InputError, Interrupted, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED};
    if err.downcast_ref::<Interrupted>().is_some() {
        return EXIT_INTERRUPTED;
    }
    for cause in err.chain() {
        if cause.downcast_ref::<InputError>().is_some() {
            return EXIT_BAD_INPUT;
        }
        if let Some(e) = cause.downcast_ref::<crate::corpus::CorpusError>() {
            if crate::error::MaybeInput::input_error(e).is_some() {
                return EXIT_BAD_INPUT;
            }
        }
    }
    EXIT_FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{InputError, Interrupted, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED};

    #[test]
    fn each_error_has_its_exit_code() {
        let bad: anyhow::Error = InputError::new("spec.toml", "bad").into();
        assert_eq!(exit_code(&bad.context("reading the spec")), EXIT_BAD_INPUT);
        assert_eq!(exit_code(&Interrupted.into()), EXIT_INTERRUPTED);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), EXIT_FAILURE);
    }
}
