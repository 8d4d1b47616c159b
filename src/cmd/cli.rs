//! Command-line definitions (clap). Only the shape of the command line lives
//! here; `main.rs` calls the library with what was parsed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::corpus::Label;

/// Measure content censorship and surveillance on chat platforms.
#[derive(Debug, Parser)]
#[command(name = "chatprobe", version, about, propagate_version = true)]
pub struct Cli {
    /// Hide progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the probe corpus: items, variants, hashes.
    #[command(subcommand)]
    Corpus(CorpusCommand),
    /// Run the embedded test platform (web chat + censorship engine).
    Testbed(TestbedArgs),
    /// Run the XMPP target: Prosody + Converse.js, censored by mod_firewall.
    Xmpp(XmppArgs),
    /// Send one probe (and a sentinel) and report what the receiver saw.
    Send(SendArgs),
    /// Open a browser for ALIAS with its persistent profile, to log in once
    /// by hand (QR code, SMS) on platforms that need it.
    Login(LoginArgs),
    /// Tables with intervals and exact tests from runs (sends.csv, trials.csv).
    Analyze(AnalyzeArgs),
    /// Print the plan of a probe spec (trials, sends, roles, timings).
    Plan(PlanArgs),
    /// List the experiment designs a spec's `kind` can name, with their keys.
    Designs,
    /// Run a probe spec: send, observe, and write the dataset.
    Run(RunArgs),
    /// List the runs in a results folder.
    Runs(RunsArgs),
    /// What changed from RUN_A to RUN_B: probes newly blocked or delivered,
    /// rates that moved (Fisher's exact test); writes changes.csv.
    Changes(ChangesArgs),
    /// Merge every run of a spec (or of all specs) under results folders
    /// into one set of tidy tables with run-level columns.
    Merge(MergeArgs),
    /// Schedules that survive reboots: a systemd user timer or a crontab
    /// line that runs a spec when it is due.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Check that this machine has the programs chatprobe's commands need,
    /// and say how to install what is missing.
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish …) to stdout.
    Completions(CompletionsArgs),
    /// Write man pages (chatprobe.1 and one per command) into a folder.
    Man(ManArgs),
}

/// `chatprobe doctor …`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only what this needs: run, send, login, xmpp, corpus (make
    /// corpus) or test (make test); without it, everything. Exit 0 only
    /// when all of that is there.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::cmd::doctor::COMMANDS))]
    pub command: Option<String>,
    /// The platform profile whose browser to check (default:
    /// probes/profiles/testbed.toml when there, else /usr/bin/chromium).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `chatprobe completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `chatprobe man --dir DIR`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages.
    #[arg(long, value_name = "DIR", default_value = "target/man")]
    pub dir: PathBuf,
}

/// `chatprobe plan …`
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The probe spec (TOML).
    pub spec: PathBuf,
    /// Write the plan CSV here (default: print it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `chatprobe run …`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["spec", "resume"])))]
pub struct RunArgs {
    /// The probe spec (TOML).
    pub spec: Option<PathBuf>,
    /// Continue an interrupted run (its folder, results/<run-id>).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["every", "runs", "if_due"])]
    pub resume: Option<PathBuf>,
    /// With --resume on the embedded testbed: go on although the run
    /// folder's saved testbed state (testbed/) is gone; the testbed then
    /// starts empty (no index of what was seeded).
    #[arg(long, requires = "resume")]
    pub fresh_testbed: bool,
    /// With --resume: mend a journal damaged in the middle (keep the
    /// records before the damage, settle every send after it by looking,
    /// never by sending) or a plan.csv that is missing or changed
    /// (rewritten from the spec); run.json `repairs` records what was done.
    #[arg(long, requires = "resume")]
    pub repair: bool,
    /// Where run folders go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// The platform's URL (default: the profile's, or an embedded testbed).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Testbed policy, overriding the spec's `[testbed] policy`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// WebDriver endpoints (Selenium Grid, Appium); default: start chromedriver.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub webdriver: Vec<String>,
    /// Start a run every PERIOD (24h, 12h, 30m …); a missed one starts at once.
    #[arg(long, value_name = "PERIOD")]
    pub every: Option<String>,
    /// With --every: stop after N runs (at least 1).
    #[arg(long, value_name = "N", requires = "every", value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,
    /// Run only if due: no run of the spec has started since the latest
    /// slot (--at, then every PERIOD); resume one a reboot interrupted; do
    /// nothing while another run of the spec holds its lock. What a
    /// schedule's timer calls.
    #[arg(long, value_name = "PERIOD", conflicts_with = "every")]
    pub if_due: Option<String>,
    /// With --if-due: the local time of day the slots are anchored at.
    #[arg(
        long,
        value_name = "HH:MM",
        requires = "if_due",
        default_value = "00:00"
    )]
    pub at: String,
    /// Run on a simulated platform described in FILE (`sim:FILE`) instead
    /// of the profile's: for testing the command line, signals and
    /// campaigns without a browser.
    #[arg(long, value_name = "sim:FILE", hide = true)]
    pub platform: Option<String>,
}

/// `chatprobe changes …`
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// The earlier run folder.
    pub run_a: PathBuf,
    /// The later run folder.
    pub run_b: PathBuf,
    /// Where changes.csv goes (default: RUN_B/changes.csv).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `chatprobe merge …`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results folders (of this machine and of others).
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub results: Vec<PathBuf>,
    /// Where the merged tables go (replaced whole).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only runs of this spec (its `name`).
    #[arg(long, value_name = "NAME")]
    pub spec: Option<String>,
}

/// `chatprobe schedule …`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install a schedule for SPEC (replacing the spec's earlier one).
    Add(ScheduleAddArgs),
    /// List the installed schedules.
    List(ScheduleListArgs),
    /// Remove a spec's schedule (by spec file or name).
    Remove(ScheduleRemoveArgs),
}

/// `chatprobe schedule add …`
#[derive(Debug, Args)]
pub struct ScheduleAddArgs {
    /// The probe spec (TOML).
    pub spec: PathBuf,
    /// How often: divides a day (24h, 12h, 1h, 30m) or whole days (48h, 7d).
    #[arg(long, value_name = "PERIOD")]
    pub every: String,
    /// Local time of day the runs are anchored at (default: now).
    #[arg(long, value_name = "HH:MM")]
    pub at: Option<String>,
    /// Where run folders go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Install as a systemd user timer or a crontab line (default: systemd
    /// when its user manager answers, else cron).
    #[arg(long, value_enum)]
    pub via: Option<ViaArg>,
}

/// Where a schedule is installed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ViaArg {
    /// The user's crontab.
    Cron,
    /// A systemd user timer.
    Systemd,
}

/// `chatprobe schedule list …`
#[derive(Debug, Args)]
pub struct ScheduleListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `chatprobe schedule remove …`
#[derive(Debug, Args)]
pub struct ScheduleRemoveArgs {
    /// The spec file, or the spec's name.
    pub spec: String,
}

/// `chatprobe runs …`
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The results folder.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

/// `chatprobe analyze …`
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Run folders, or sends.csv / trials.csv files.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (default: the first run's analysis/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Interval for proportions.
    #[arg(long, value_enum, default_value = "wilson")]
    pub interval: IntervalArg,
}

/// `chatprobe login …`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account to log in.
    pub alias: String,
    /// The accounts file.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// The platform profile (its `[browser] profile_dir` keeps the login).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Keep the browser headless (for scripted logins and tests).
    #[arg(long)]
    pub headless: bool,
    /// Seconds to wait for the logged-in page.
    #[arg(long, default_value_t = 300.0)]
    pub wait: f64,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// `chatprobe send …`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["to", "group"])))]
#[command(group(clap::ArgGroup::new("what").required(true).args(["text", "file"])))]
pub struct SendArgs {
    /// The accounts file: only these accounts are ever messaged.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// The platform profile.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "probes/profiles/testbed.toml"
    )]
    pub profile: PathBuf,
    /// Sender alias.
    #[arg(long)]
    pub from: String,
    /// Receiver alias (direct chat).
    #[arg(long)]
    pub to: Option<String>,
    /// Group name (group chat).
    #[arg(long)]
    pub group: Option<String>,
    /// Alias whose client is watched (default: the receiver; in a group, the
    /// first china member, else the first other member).
    #[arg(long)]
    pub observer: Option<String>,
    /// Send this text.
    #[arg(long)]
    pub text: Option<String>,
    /// Send this file (sent under a unique name, its marker).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Seconds the probe has to arrive.
    #[arg(long, default_value_t = 15.0)]
    pub timeout: f64,
    /// Do not send a sentinel (outcomes are then delivered or lost).
    #[arg(long)]
    pub no_sentinel: bool,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// Where the platform and the WebDriver endpoints are.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// The platform's base URL (default for the testbed profile: start the
    /// embedded testbed).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Testbed policy, when chatprobe starts the testbed.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "probes/policies/wechat-2020.toml"
    )]
    pub policy: PathBuf,
    /// WebDriver endpoint(s), comma-separated or repeated (default: start chromedriver).
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub webdriver: Vec<String>,
}

/// `chatprobe testbed …`
#[derive(Debug, Args)]
pub struct TestbedArgs {
    /// The censorship policy (TOML).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The accounts file (TOML); the testbed creates these accounts and groups.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// Where to listen (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: std::net::SocketAddr,
    /// Allow a non-loopback --addr.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the ground truth (JSONL) here.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Upload cap in MiB (1 to 1024).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_upload_mib: u16,
    /// Keep the platform's state (messages, files, hash indexes, pending
    /// inspections) in this folder, and restore it when started again.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Serve the web client without message ids, sender or file-name
    /// attributes, and without the names of images (as a phone app shows
    /// them): for profiles that recognise messages by nonce, name and
    /// picture (probes/profiles/testbed-noids.toml).
    #[arg(long)]
    pub no_ids: bool,
    /// Show pictures as WeChat's chat does: small square thumbnails,
    /// centre-cropped and re-encoded, the full picture one click away
    /// (probes/profiles/testbed-thumbnails.toml).
    #[arg(long)]
    pub thumbnails: bool,
}

/// `chatprobe xmpp …`
#[derive(Debug, Args)]
pub struct XmppArgs {
    /// The accounts file; every account is registered as LOGIN@DOMAIN.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// The XMPP domain (the profile's `domain` variable must name it).
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Start every account with an empty roster, so that every chat is
    /// with a non-contact (the default puts all accounts in one shared
    /// roster group).
    #[arg(long)]
    pub no_roster: bool,
    /// Keywords the censor drops (keywords.csv: its sensitive rows; or a
    /// text file, one a line; `a+b` = every part).
    #[arg(long, value_name = "FILE")]
    pub keywords: Option<PathBuf>,
    /// Converse.js's dist/ folder.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "third_party/node_modules/converse.js/dist"
    )]
    pub converse: PathBuf,
    /// Working folder: config, data, the page and prosody.log (its
    /// `chatprobe-drop` lines are the ground truth).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Where the corpus is.
#[derive(Debug, Clone, Args)]
pub struct CorpusDir {
    /// The corpus folder (holding manifest.csv).
    #[arg(long = "corpus", value_name = "DIR", default_value = "corpus")]
    pub dir: PathBuf,
}

/// `chatprobe corpus …`
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Hash every item and variant into index.csv (incremental, all cores).
    Index {
        #[command(flatten)]
        corpus: CorpusDir,
    },
    /// Make transformed variants and fresh copies of items.
    Variants {
        #[command(flatten)]
        corpus: CorpusDir,
        /// Transform spec(s), repeatable or comma-separated: mirror, flip,
        /// rotate:DEG, crop:FRAC, border:PX, pad:FRAC, scale:F, squash-x:F,
        /// squash-y:F, grey, otsu, blur:SIGMA, jpeg:Q, brightness:D, noise:A,
        /// tile:N, fresh, fresh-meta.
        #[arg(long = "transform", short = 't', value_name = "SPEC", required = true)]
        transforms: Vec<String>,
        /// Only these items (repeatable); default: every item of a fitting kind.
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
        /// Seed for seeded transforms (fresh, fresh-meta, noise).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Add a folder of your own files to the corpus (duplicates skipped).
    Import {
        #[command(flatten)]
        corpus: CorpusDir,
        /// The folder to import (walked recursively).
        #[arg(value_name = "DIR")]
        folder: PathBuf,
        /// Label of the imported files.
        #[arg(long, value_parser = parse_label)]
        label: Label,
        /// Topic of the imported files, e.g. `june4`.
        #[arg(long)]
        topic: String,
        /// Provenance, e.g. "Citizen Lab 2019, censored image set".
        #[arg(long)]
        source: String,
        /// Language tag of the content, e.g. zh-Hans.
        #[arg(long, default_value = "")]
        lang: String,
        /// Notes for every imported item.
        #[arg(long, default_value = "")]
        notes: String,
    },
}

fn parse_label(s: &str) -> Result<Label, String> {
    s.parse()
}

/// `--interval`: which interval for proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IntervalArg {
    /// Wilson score (default).
    Wilson,
    /// Clopper–Pearson.
    Exact,
}

impl From<IntervalArg> for crate::stats::Interval {
    fn from(a: IntervalArg) -> Self {
        match a {
            IntervalArg::Wilson => crate::stats::Interval::Wilson,
            IntervalArg::Exact => crate::stats::Interval::Exact,
        }
    }
}
