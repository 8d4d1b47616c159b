//! The dependency rule of docs/ARCHITECTURE.md, checked on the source: the
//! floors and narrow doors are read from that page's `floors` and `doors`
//! blocks, and every `crate::` path in `src/` must go down a floor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::util::root;

/// Floor of each top-level module (0 is the top), and the narrow doors
/// (lower module, the one file allowed to import it from above).
struct Rule {
    floor: HashMap<String, usize>,
    doors: HashMap<String, String>,
}

/// The lines of the fenced block that opens with "```{name}".
fn block<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("```{name}");
    let start = doc
        .lines()
        .position(|l| l.trim() == open)
        .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no ```{name} block"));
    doc.lines()
        .skip(start + 1)
        .take_while(|l| l.trim() != "```")
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn rule() -> Rule {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut floor = HashMap::new();
    for (i, line) in block(&doc, "floors").iter().enumerate() {
        for m in line.split_whitespace() {
            assert!(
                floor.insert(m.to_string(), i).is_none(),
                "{m} on two floors"
            );
        }
    }
    let doors = block(&doc, "doors")
        .iter()
        .map(|l| {
            let (m, file) = l.split_once(':').expect("`module: file`");
            (m.trim().to_string(), file.trim().to_string())
        })
        .collect();
    Rule { floor, doors }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules `crate::` paths in `text` name (comments left out).
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `$crate::` is a macro's.
            if !rest[..i].ends_with('$') && !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// Top-level module of a file under src/ (`run/endpoint.rs` → `run`).
fn module_of(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn every_import_goes_down_a_floor() {
    let rule = rule();
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen_modules = std::collections::BTreeSet::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" {
            continue;
        }
        let from = module_of(&rel);
        seen_modules.insert(from.clone());
        let Some(&mine) = rule.floor.get(&from) else {
            wrong.push(format!("src/{rel}: module `{from}` is on no floor"));
            continue;
        };
        for (line, to) in imports(&std::fs::read_to_string(f).unwrap()) {
            if to == from {
                continue;
            }
            let Some(&theirs) = rule.floor.get(&to) else {
                continue; // not a module of ours (a macro, `crate::main`)
            };
            // A door names the one file of its importer's module that may
            // import the module behind it.
            let door_shut = rule
                .doors
                .get(&to)
                .is_some_and(|door| module_of(door) == from && *door != rel);
            if theirs <= mine || door_shut {
                wrong.push(format!("src/{rel}:{line}: `{from}` imports `{to}`"));
            }
        }
    }
    // Every module of lib.rs is on a floor (a new one must be placed).
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for l in lib.lines() {
        if let Some(m) = l.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')) {
            if !rule.floor.contains_key(m) {
                wrong.push(format!("src/lib.rs: module `{m}` is on no floor"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the rule of docs/ARCHITECTURE.md forbids:\n{}",
        wrong.join("\n")
    );
}

/// No analysis names a design: what differs between designs comes
/// through the registry, so a new design needs no edit in `analysis` or
/// `report`.
#[test]
fn no_analysis_names_a_design() {
    let mut files = Vec::new();
    sources(&root().join("src/analysis"), &mut files);
    files.push(root().join("src/report/mod.rs"));
    let mut named = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests may build rows of any design.
        let lines = text.lines().take_while(|l| l.trim() != "#[cfg(test)]");
        for (n, line) in lines.enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for d in chatprobe::probe::design::DESIGNS {
                if code.contains(&format!("\"{}\"", d.name)) {
                    named.push(format!("{}:{}: \"{}\"", f.display(), n + 1, d.name));
                }
            }
        }
    }
    assert!(
        named.is_empty(),
        "designs named in the analysis:\n{}",
        named.join("\n")
    );
}
