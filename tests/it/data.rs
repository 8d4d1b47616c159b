//! Datasets as other tools see them: a folder's datapackage.json is
//! validated by the `frictionless` package (types, allowed values, keys),
//! and every CSV is loaded by R's `read.csv` and DuckDB's `read_csv_auto`
//! with no options, each column's type checked against its schema.
//! `make deps-data` installs R, and frictionless and DuckDB into
//! `third_party/pyenv`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{chatprobe, csv_maps, read_csv, root, s};

fn pyenv(bin: &str) -> PathBuf {
    let p = root().join("third_party/pyenv/bin").join(bin);
    assert!(
        p.exists(),
        "{} is missing: run `make deps-data`",
        p.display()
    );
    p
}

fn output(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (run `make deps-data`)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `frictionless validate` on `dir/datapackage.json`: the errors, if any.
pub fn frictionless_errors(dir: &Path) -> Vec<String> {
    let out = Command::new(pyenv("frictionless"))
        .args(["validate", "--json", "datapackage.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "frictionless said no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut errors: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    for t in report["tasks"].as_array().unwrap() {
        for e in t["errors"].as_array().unwrap() {
            errors.push(format!(
                "{}: {}",
                t["place"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ));
        }
    }
    assert_eq!(
        report["valid"].as_bool(),
        Some(errors.is_empty()),
        "{report}"
    );
    errors
}

/// Column types by file: DuckDB's `read_csv_auto`.
fn duckdb_types(dir: &Path) -> HashMap<(String, String), String> {
    let script = r#"
import duckdb, glob, json
out = []
for f in sorted(glob.glob("*.csv")):
    for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_csv_auto('{f}')").fetchall():
        out.append([f, r[0], r[1]])
print(json.dumps(out))
"#;
    let text = output(
        Command::new(pyenv("python"))
            .args(["-c", script])
            .current_dir(dir),
        "DuckDB",
    );
    let rows: Vec<[String; 3]> = serde_json::from_str(&text).unwrap();
    rows.into_iter().map(|[f, c, t]| ((f, c), t)).collect()
}

/// Column types by file: R's `read.csv`.
fn r_types(dir: &Path) -> HashMap<(String, String), String> {
    let script = r#"for (f in list.files(pattern = "\\.csv$")) {
  d <- read.csv(f, check.names = FALSE)
  for (c in names(d)) cat(f, "\t", c, "\t", class(d[[c]])[1], "\n", sep = "")
}"#;
    let text = output(
        Command::new("Rscript")
            .args(["--vanilla", "-e", script])
            .current_dir(dir),
        "R",
    );
    text.lines()
        .map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            ((v[0].to_string(), v[1].to_string()), v[2].to_string())
        })
        .collect()
}

/// Whether a tool's type for a column fits its schema type. A text column
/// may hold values that look like numbers (a tool guessing is right to
/// read them so); an all-empty column is read as text (DuckDB) or logical
/// (R) whatever its schema type.
fn fits(schema: &str, tool: &str, empty: bool) -> bool {
    let int = |t: &str| {
        ["BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"].contains(&t) || t == "integer"
    };
    if empty && (tool == "VARCHAR" || tool == "logical") {
        return true;
    }
    match schema {
        "string" => true,
        "integer" => int(tool) || tool == "numeric",
        "number" => {
            int(tool) || tool == "DOUBLE" || tool.starts_with("DECIMAL") || tool == "numeric"
        }
        "boolean" => tool == "BOOLEAN" || tool == "logical",
        "datetime" => tool.starts_with("TIMESTAMP") || tool == "character",
        _ => false,
    }
}

/// Validate `dir`'s datapackage.json with frictionless, check that it
/// names every CSV of the folder, and load every CSV in R and DuckDB
/// checking the types; returns the package.
pub fn check_package(dir: &Path) -> Value {
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("datapackage.json")).unwrap())
            .unwrap();
    let errors = frictionless_errors(dir);
    assert!(errors.is_empty(), "{}: {errors:#?}", dir.display());
    let mut csvs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    csvs.sort();
    let mut declared: Vec<String> = package["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    declared.sort();
    assert_eq!(
        csvs,
        declared,
        "every CSV of {} is in its package",
        dir.display()
    );
    let (duck, r) = (duckdb_types(dir), r_types(dir));
    let mut wrong = Vec::new();
    for res in package["resources"].as_array().unwrap() {
        let file = res["path"].as_str().unwrap().to_string();
        let (header, rows) = read_csv(&dir.join(&file));
        for (i, f) in res["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let name = f["name"].as_str().unwrap().to_string();
            assert_eq!(header[i], name, "{file}: column {i}");
            let empty = rows.iter().all(|r| r[i].is_empty());
            let want = f["type"].as_str().unwrap();
            for (tool, types) in [("DuckDB", &duck), ("R", &r)] {
                let got = types
                    .get(&(file.clone(), name.clone()))
                    .unwrap_or_else(|| panic!("{tool} did not read {file} {name}"));
                if !fits(want, got, empty) {
                    wrong.push(format!("{file} {name}: {want} read by {tool} as {got}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}: {wrong:#?}", dir.display());
    package
}

/// `chatprobe merge`: runs of two machines with the same run id keep
/// distinct keys, a copied run is merged once, a clash is refused, and the
/// merged package is valid and loads in pandas' tools, R and DuckDB.
#[test]
fn merge_gathers_runs_of_two_machines_into_one_valid_package() {
    let c = crate::run::Campaign::new(
        "1.0",
        "sends_per_minute = 120\nparallel_pairs = 1\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.5",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["sports", "tibet"] }
test_chat = { from = "intl-a", to = "china-c" }
"#,
    );
    let here = c.results();
    let out = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["run", s(&c.spec), "--results", s(&here), "--quiet"])
        .env("CHATPROBE_VANTAGE", "lab-a")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(&here)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["vantage"], "lab-a");
    // The "other machine": the same run id, measured from lab-b.
    let there = c.dir.path().join("other-machine");
    copy_run(&run, &there.join(&id), |m| m["vantage"] = "lab-b".into());
    // And a copy of lab-a's run inside the other folder (merged once).
    copy_run(&run, &there.join("copy").join(&id), |_| {});
    let merged = c.dir.path().join("merged");
    let r = chatprobe(&[
        "merge",
        s(&here),
        s(&there),
        s(&there.join("copy")),
        "--out",
        s(&merged),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("2 runs") && r.stdout.contains("merged once: 1"),
        "{}",
        r.stdout
    );
    let runs = csv_maps(&merged.join("runs.csv"));
    let keys: Vec<&str> = runs.iter().map(|r| r["run_key"].as_str()).collect();
    assert_eq!(
        keys.iter().collect::<std::collections::BTreeSet<_>>().len(),
        2
    );
    assert!(keys.contains(&format!("{id}@lab-a").as_str()), "{keys:?}");
    assert!(runs.iter().all(|r| r["schema_version"] == "1"));
    let sends = csv_maps(&merged.join("sends.csv"));
    let one = csv_maps(&run.join("sends.csv")).len();
    assert_eq!(sends.len(), 2 * one);
    assert!(sends
        .iter()
        .all(|r| r["run_id"] == id && r["date"].len() == 10 && !r["tool_version"].is_empty()));
    let trials = csv_maps(&merged.join("trials.csv"));
    assert_eq!(trials.len(), 2 * csv_maps(&run.join("trials.csv")).len());
    check_package(&merged);

    // A different run under the same key: refused, exit 2, nothing replaced.
    let clash = c.dir.path().join("clash");
    copy_run(&run, &clash.join(&id), |m| {
        m["started_at"] = "2020-01-01T00:00:00.000Z".into()
    });
    let before = std::fs::read(merged.join("sends.csv")).unwrap();
    let r = chatprobe(&["merge", s(&here), s(&clash), "--out", s(&merged)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("CHATPROBE_VANTAGE"), "{}", r.stderr);
    assert_eq!(std::fs::read(merged.join("sends.csv")).unwrap(), before);
}

/// Copy a run folder, editing its run.json.
fn copy_run(from: &Path, to: &Path, edit: impl Fn(&mut Value)) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("run.json")).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(to.join("run.json"), serde_json::to_string(&m).unwrap()).unwrap();
}
