//! The commands about the machine and the shell: `doctor` finds what a
//! command needs and says how to install what is missing; `completions`
//! and `man` produce scripts and pages that the shells and `man` accept.

use std::process::Command;

use crate::util::{chatprobe, chatprobe_ok, root, s};

/// On this machine (`make test` installed everything) what `run` needs is
/// there, with chromedriver's major version matching Chromium's.
#[test]
fn doctor_finds_what_run_needs_here() {
    let r = chatprobe_ok(&["doctor", "run"]);
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{}", r.stdout))
            .to_string()
    };
    assert!(line("Chromium ").starts_with("ok"), "{}", r.stdout);
    assert!(line("chromedriver").starts_with("ok"), "{}", r.stdout);
    assert!(r.stdout.contains("everything needed is here"));
    let json = chatprobe_ok(&["doctor", "run", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "Chromium",
        "chromedriver",
        "Prosody",
        "Converse.js",
        "Appium 3",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
}

/// A profile naming a browser that is not there: exit 1, the browser
/// marked missing, and the command that installs it.
#[test]
fn doctor_names_a_missing_browser_and_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let text = std::fs::read_to_string(root().join("probes/profiles/testbed-appium.toml"))
        .unwrap()
        .replace(
            "binary = \"/usr/bin/chromium\"",
            "binary = \"/nonexistent/chromium\"",
        );
    std::fs::write(&profile, text).unwrap();
    let r = chatprobe(&["doctor", "send", "--profile", s(&profile)]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.stdout.lines().find(|l| l.contains("Chromium ")).unwrap();
    assert!(
        line.starts_with("MISSING") && line.contains("/nonexistent/chromium"),
        "{line}"
    );
    assert!(
        r.stdout.contains("sudo apt-get install chromium"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("`send`"), "{}", r.stderr);
    // A profile that is not there is bad input, not a silent default.
    let r = chatprobe(&["doctor", "run", "--profile", "/nonexistent/p.toml"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("/nonexistent/p.toml"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing printed before the error");
}

/// From a folder without third_party/, `xmpp` lacks Converse.js: said,
/// with `make deps-npm`; what `run` needs is still there.
#[test]
fn doctor_for_xmpp_outside_the_project_misses_converse() {
    let dir = tempfile::tempdir().unwrap();
    let run = |what: &str| {
        Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args(["doctor", what])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run("xmpp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("Converse.js")).unwrap();
    assert!(line.starts_with("MISSING"), "{line}");
    assert!(stdout.contains("make deps-npm"), "{stdout}");
    assert_eq!(run("run").status.code(), Some(0));
}

/// Completion scripts for bash, zsh and fish name the commands; bash's
/// parses. Man pages are written for chatprobe and each command.
#[test]
fn completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let r = chatprobe_ok(&["completions", shell]);
        for cmd in ["doctor", "run", "analyze", "xmpp"] {
            assert!(r.stdout.contains(cmd), "{shell} lacks {cmd}");
        }
        if shell == "bash" {
            let script = dir.path().join("chatprobe.bash");
            std::fs::write(&script, &r.stdout).unwrap();
            let ok = Command::new("bash")
                .arg("-n")
                .arg(&script)
                .status()
                .unwrap();
            assert!(ok.success(), "bash -n rejects the completion script");
        }
    }
    let bad = chatprobe(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    let man = dir.path().join("man");
    chatprobe_ok(&["man", "--dir", s(&man)]);
    let top = std::fs::read_to_string(man.join("chatprobe.1")).unwrap();
    assert!(
        top.starts_with(".ie") || top.contains(".TH chatprobe"),
        "{top}"
    );
    assert!(top.contains("doctor"));
    let run = std::fs::read_to_string(man.join("chatprobe-run.1")).unwrap();
    assert!(run.contains("\\-\\-resume"), "{run}");
}

/// CITATION.cff names this version and has the keys CFF 1.2.0 requires.
#[test]
fn the_citation_file_names_this_version() {
    let cff = std::fs::read_to_string(root().join("CITATION.cff")).unwrap();
    for key in ["cff-version: 1.2.0", "message:", "title:", "authors:"] {
        assert!(cff.lines().any(|l| l.starts_with(key)), "{key}");
    }
    let version = format!("version: \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        cff.lines().any(|l| l == version),
        "CITATION.cff's version is not Cargo.toml's ({version})"
    );
}
