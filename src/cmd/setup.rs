//! Commands about the machine and the shell rather than measurements:
//! `doctor` (what is installed), `completions` and `man`.

use anyhow::{bail, Context};
use clap::CommandFactory;

use super::cli::{Cli, CompletionsArgs, DoctorArgs, ManArgs};
use super::doctor;

/// `chatprobe doctor`: print every check; fail (exit 1) when something the
/// chosen command needs is missing.
pub fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    // The browser the profile names. A profile given that cannot be read
    // is bad input (exit 2); without one, the project's testbed profile if
    // this is the project's folder, else the default browser.
    let default = std::path::Path::new("probes/profiles/testbed.toml");
    let profile = match &args.profile {
        Some(p) => Some(p.as_path()),
        None => default.is_file().then_some(default),
    };
    let browser = match profile {
        Some(p) => crate::platform::profile::Profile::load(p)?.browser.binary,
        None => String::new(),
    };
    let checks = doctor::run(std::path::Path::new(&browser), std::path::Path::new("."));
    let wanted = doctor::needed(&checks, args.command.as_deref());
    if args.json {
        let v: Vec<serde_json::Value> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["ok"] = c.ok().into();
                v["needed"] = wanted.contains(&i).into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", doctor::render(&checks, &wanted));
    }
    let missing = wanted.iter().filter(|&&i| !checks[i].ok()).count();
    if missing > 0 {
        bail!(
            "{missing} program(s) {} needs are missing (see above)",
            args.command
                .as_deref()
                .map(|c| format!("`{c}`"))
                .unwrap_or_else(|| "chatprobe".into())
        );
    }
    Ok(())
}

/// `chatprobe completions SHELL`: the script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "chatprobe", &mut std::io::stdout());
    Ok(())
}

/// `chatprobe man --dir DIR`: chatprobe.1 and chatprobe-COMMAND.1.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    eprintln!("man pages written into {}", args.dir.display());
    Ok(())
}
