//! The `chatprobe` binary: parse the command line, call the library, map
//! errors to exit codes with `chatprobe::error::exit_code` (0 ok, 1
//! failure, 2 bad input, 130 interrupted).

use anyhow::Context;
use clap::Parser;

use chatprobe::cli::{
    AnalyzeArgs, Cli, Command, CorpusCommand, LoginArgs, PlanArgs, RunArgs, RunsArgs, SendArgs,
    TestbedArgs, XmppArgs,
};
use chatprobe::corpus::{self, import::ImportOptions};
use chatprobe::error::{exit_code, Interrupted, EXIT_OK};

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => EXIT_OK,
        // `chatprobe plan | head`: the reader has what it wanted.
        Err(err) if broken_pipe(&err) => EXIT_OK,
        Err(err) => {
            // An interrupted command has said where it stopped.
            if err.downcast_ref::<Interrupted>().is_none() {
                eprintln!("error: {err:#}");
            }
            exit_code(&err)
        }
    };
    std::process::exit(code);
}

/// Whether the error is a write to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| {
                matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}

/// `println!` panics when stdout is a closed pipe; that is a reader that
/// stopped reading, not a failure: exit 0 without a word.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(EXIT_OK);
        }
        default(info);
    }));
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = cli.quiet;
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
            eprintln!(
                "{} added, {} duplicates skipped, {} unsupported files skipped",
                r.added.len(),
                r.duplicates.len(),
                r.unsupported.len()
            );
        }
        Command::Testbed(args) => testbed(args)?,
        Command::Xmpp(args) => xmpp(args)?,
        Command::Send(args) => send(args)?,
        Command::Login(args) => login(args)?,
        Command::Analyze(args) => analyze(args)?,
        Command::Plan(args) => plan(args)?,
        Command::Designs => designs(),
        Command::Run(args) => return run_spec(args, quiet),
        Command::Runs(args) => runs(args)?,
    }
    Ok(())
}

fn testbed(args: TestbedArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let mut config = chatprobe::testbed::Config::new(&args.policy, &args.accounts);
        config.addr = args.addr;
        config.allow_remote = args.allow_remote;
        config.truth = args.truth;
        config.max_upload = usize::from(args.max_upload_mib) * 1024 * 1024;
        config.state = args.state;
        config.no_ids = args.no_ids;
        let tb = chatprobe::testbed::Testbed::start(&config).await?;
        println!("listening on {}", tb.url());
        eprintln!("policy `{}`; Ctrl-C stops", tb.engine.policy().name);
        shutdown_signal().await;
        tb.stop().await;
        Ok(())
    })
}

fn xmpp(args: XmppArgs) -> anyhow::Result<()> {
    let cfg = chatprobe::targets::xmpp::Config {
        accounts: args.accounts,
        keywords: args.keywords,
        converse: args.converse,
        dir: args.dir,
    };
    let target = chatprobe::targets::xmpp::Xmpp::start(&cfg)?;
    println!("listening on {}", target.url());
    eprintln!(
        "Converse at {}/files/index.html; Prosody's log: {}; Ctrl-C stops",
        target.url(),
        target.dir().join("prosody.log").display()
    );
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(shutdown_signal());
    drop(target);
    Ok(())
}

fn send(args: SendArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let obs = chatprobe::platform::cli_send(&args, shutdown_signal()).await?;
        println!("{}", serde_json::to_string(&obs)?);
        Ok(())
    })
}

fn login(args: LoginArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let dir = chatprobe::platform::cli_login(&args, shutdown_signal()).await?;
        println!("logged in; browser profile kept in {}", dir.display());
        Ok(())
    })
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            let first = &args.inputs[0];
            let base = if first.is_dir() {
                first.clone()
            } else {
                first.parent().map(|p| p.to_path_buf()).unwrap_or_default()
            };
            base.join("analysis")
        }
    };
    let t = chatprobe::stats::analyze::run(&args.inputs, &out, args.interval)?;
    println!(
        "{}: {} sends, {} trials read; {} surveillance rows, {} latency rows, {} transforms",
        out.display(),
        t.sends,
        t.trials,
        t.surveillance.len(),
        t.latency.len(),
        t.transforms.len()
    );
    Ok(())
}

fn designs() {
    use chatprobe::probe::design::{COMMON_KEYS, DESIGNS};
    for d in DESIGNS {
        println!(
            "{}\n    {}\n    keys: {}, {}",
            d.name,
            d.about,
            COMMON_KEYS[1..].join(", "),
            d.keys.join(", ")
        );
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let spec = chatprobe::probe::Spec::load(&args.spec)?;
    let plan = chatprobe::probe::Plan::build(&spec);
    let adaptive: Vec<String> = plan
        .experiments
        .iter()
        .filter(|x| x.adaptive())
        .map(|x| format!("`{}` ({})", x.name(), x.design()))
        .collect();
    if !adaptive.is_empty() {
        eprintln!(
            "adaptive: {} — the plan holds their first step; the rest depends on outcomes and is added to the run's plan.csv as it runs",
            adaptive.join(", ")
        );
    }
    match &args.out {
        Some(out) => {
            plan.save(out)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: {} trials, {} sends",
                out.display(),
                plan.trials.len(),
                plan.sends()
            );
        }
        None => {
            plan.write_csv(std::io::stdout().lock())?;
            eprintln!("{} trials, {} sends", plan.trials.len(), plan.sends());
        }
    }
    Ok(())
}

fn run_spec(args: RunArgs, quiet: bool) -> anyhow::Result<()> {
    let opts = chatprobe::schedule::RunOptions {
        spec: args.spec.clone(),
        resume: args.resume.clone(),
        results: args.results.clone(),
        base_url: args.base_url.clone(),
        policy: args.policy.clone(),
        webdriver: args.webdriver.clone(),
        quiet,
    };
    let period = args
        .every
        .as_deref()
        .map(chatprobe::schedule::parse_period)
        .transpose()?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let summaries = rt.block_on(async {
        match period {
            Some(p) => chatprobe::schedule::run_every(&opts, p, args.runs, shutdown_signal()).await,
            None => chatprobe::schedule::run(&opts, shutdown_signal())
                .await
                .map(|s| vec![s]),
        }
    })?;
    let mut interrupted = false;
    for s in &summaries {
        let c = &s.counts;
        println!(
            "{}: {} ({} of {} trials; {} delivered, {} blocked, {} lost, {} error)",
            s.dir.display(),
            s.state,
            s.trials_done,
            s.trials_planned,
            c[0].1,
            c[1].1,
            c[2].1,
            c[3].1
        );
        if s.state != "complete" {
            interrupted = true;
            eprintln!(
                "stopped ({}); continue with: chatprobe run --resume {}",
                s.stop_reason,
                s.dir.display()
            );
        }
    }
    if interrupted {
        return Err(Interrupted.into());
    }
    Ok(())
}

fn runs(args: RunsArgs) -> anyhow::Result<()> {
    let runs = chatprobe::schedule::list_runs(&args.results);
    let mut w = csv::WriterBuilder::new()
        .delimiter(b'\t')
        .from_writer(std::io::stdout().lock());
    for r in &runs {
        w.serialize(r)?;
    }
    w.flush()?;
    if runs.is_empty() {
        eprintln!("no runs in {}", args.results.display());
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
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
