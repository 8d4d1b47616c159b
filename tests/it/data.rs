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

use crate::util::{read_csv, root};

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
