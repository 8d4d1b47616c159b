//! The report's provenance: run.json as a table a reader can follow (what
//! was run, when, with which software, which spec, against which platform)
//! and how to cite the tool and the run.

use std::fmt::Write as _;

use serde_json::Value;

use super::esc;

fn text(m: &Value, key: &str) -> String {
    match m.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// run.json's `webdriver` in words: the endpoint kind, the sessions.
fn endpoints(m: &Value) -> String {
    let Some(w) = m.get("webdriver") else {
        return String::new();
    };
    let kind = w.get("kind").and_then(Value::as_str).unwrap_or("");
    let sessions: Vec<String> = w
        .get("sessions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let acc = s.get("account").and_then(Value::as_str).unwrap_or("?");
                    let end = s.get("endpoint").and_then(Value::as_str).unwrap_or("");
                    let node = s.get("node").and_then(Value::as_str).unwrap_or("");
                    match node {
                        "" => format!("{acc} → {end}"),
                        n => format!("{acc} → {end} (node {n})"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    match (kind, sessions.is_empty()) {
        ("", _) => String::new(),
        (k, true) => k.to_string(),
        (k, false) => format!("{k}: {}", sessions.join("; ")),
    }
}

/// The outcome counts in words, largest first.
fn counts(m: &Value) -> String {
    let mut c: Vec<(String, u64)> = m
        .get("counts")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    c.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    c.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The provenance section and the citation for run.json `m`.
pub fn html(m: &Value) -> String {
    let software = match text(m, "git_revision").as_str() {
        "" => format!("chatprobe {}", text(m, "version")),
        rev => format!("chatprobe {} (git {rev})", text(m, "version")),
    };
    let list = |key: &str| {
        m.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let platform = match (text(m, "platform").as_str(), text(m, "policy")) {
        ("embedded-testbed", p) if !p.is_empty() => {
            format!("the embedded testbed, policy {p}")
        }
        (p, _) => p.to_string(),
    };
    let analysed = match option_env!("CHATPROBE_GIT_REVISION").unwrap_or("") {
        "" => format!("chatprobe {}", env!("CARGO_PKG_VERSION")),
        rev => format!("chatprobe {} (git {rev})", env!("CARGO_PKG_VERSION")),
    };
    let rows: [(&str, &str, String); 15] = [
        ("What", "run", text(m, "run_id")),
        (
            "",
            "state",
            format!(
                "{} ({} of {} trials; stopped: {})",
                text(m, "state"),
                text(m, "trials_done"),
                text(m, "trials_planned"),
                text(m, "stop_reason")
            ),
        ),
        ("", "outcomes", counts(m)),
        ("When", "started", text(m, "started_at")),
        ("", "finished", text(m, "finished_at")),
        ("", "resumed", list("resumed")),
        ("", "crashes survived", text(m, "crashes")),
        ("Software", "run by", software),
        ("", "analysed by", analysed),
        (
            "Spec",
            "name and file",
            format!("{} ({})", text(m, "spec_name"), text(m, "spec_path")),
        ),
        ("", "spec SHA-256", text(m, "spec_sha256")),
        ("", "corpus index SHA-256", text(m, "corpus_index_sha256")),
        ("", "plan seed", text(m, "seed")),
        (
            "Platform",
            "profile and platform",
            format!("{} on {platform}", text(m, "profile")),
        ),
        ("", "WebDriver", endpoints(m)),
    ];
    let mut h = String::from("<h2>Provenance</h2>\n<table class=\"provenance\">\n");
    for (group, what, value) in &rows {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(group),
            esc(what),
            esc(value)
        );
    }
    h.push_str(
        "</table>\n<p>run.json in the run folder holds all of it, with the spec's full text.</p>\n",
    );
    let _ = writeln!(
        h,
        "<h3>How to cite</h3>\n<p>Cite the tool, and name the run so that readers can find its data:</p>\n<pre>{}</pre>",
        esc(&format!(
            "The chatprobe developers. chatprobe: measuring content censorship and surveillance on chat platforms, version {}{}. Software.\nData: run {} (spec {}, SHA-256 {}).",
            match text(m, "version").as_str() {
                "" => env!("CARGO_PKG_VERSION").to_string(),
                v => v.to_string(),
            },
            match text(m, "git_revision").as_str() {
                "" => String::new(),
                r => format!(", git revision {r}"),
            },
            text(m, "run_id"),
            text(m, "spec_name"),
            text(m, "spec_sha256"),
        ))
    );
    h.push_str(
        "<p>CITATION.cff in chatprobe's source holds the same as structured metadata.</p>\n",
    );
    h
}
