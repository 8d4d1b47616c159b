//! The XMPP target: Prosody on 127.0.0.1 serving Converse.js, with
//! `mod_firewall` as the censor.
//!
//! [`Xmpp::start`] writes a working folder from the templates in
//! `probes/targets/xmpp/` (embedded in the binary): `prosody.cfg.lua`, the
//! Converse page in both of Converse's layouts, `www/index.html`
//! (fullscreen) and `www/overlayed.html` (Converse's default: chats as
//! boxes over the page), with Converse's own `dist/` linked beside them,
//! `groups.txt` (one shared roster group holding every account, so each
//! client lists the others as contacts; empty with [`Config::roster`]
//! off, so that every chat is with a non-contact), and `censor.pfw`, a
//! `mod_firewall` script made from a keyword list by [`firewall_script`].
//! It registers every account of the accounts file (`LOGIN@DOMAIN`),
//! starts `prosody -F` in a process group of its own, and waits until its
//! HTTP port answers. Dropping it stops Prosody (SIGTERM, then SIGKILL).
//!
//! The censor drops a message in Prosody's `::preroute` chain — before
//! routing, storage and the archive — and writes one log line per drop
//! (`chatprobe-drop keyword=K to=JID body=TEXT`): [`Xmpp::drops`] reads
//! them back, Prosody's own record of what it censored. [`read_archive`]
//! reads the other half: the bodies Prosody stored (XEP-0313 archive) for
//! one account, every message it routed to or from them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::Accounts;
use crate::error::InputError;

const CONFIG: &str = include_str!("../../probes/targets/xmpp/prosody.cfg.lua");
const PAGE: &str = include_str!("../../probes/targets/xmpp/index.html");

/// The XMPP domain accounts are registered under, unless told otherwise.
pub const DOMAIN: &str = "localhost";

/// The pages written, by Converse layout (`view_mode`).
pub const PAGES: [(&str, &str); 2] = [
    ("index.html", "fullscreen"),
    ("overlayed.html", "overlayed"),
];

/// How to start the target.
#[derive(Debug, Clone)]
pub struct Config {
    /// The accounts to register.
    pub accounts: PathBuf,
    /// Keywords to censor: a keywords.csv (its `sensitive` rows, or every
    /// row without a `label` column) or a text file, one keyword a line;
    /// `a+b` is a combination (every part must appear).
    pub keywords: Option<PathBuf>,
    /// Converse's `dist/` folder (from the npm package `converse.js`).
    pub converse: PathBuf,
    /// The working folder (config, data, log, page).
    pub dir: PathBuf,
    /// The XMPP domain (default [`DOMAIN`]).
    pub domain: String,
    /// Put every account in every roster (one shared group); off, each
    /// account starts with an empty roster.
    pub roster: bool,
}

/// Whether `d` can be this target's XMPP domain: DNS labels of letters,
/// digits and `-`, joined by dots (it is written into Prosody's config).
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// One message the censor dropped, from Prosody's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drop {
    /// The rule: a keyword or an `a+b` combination.
    pub keyword: String,
    /// The addressee (bare JID).
    pub to: String,
    /// The message's text.
    pub body: String,
}

/// A running Prosody.
pub struct Xmpp {
    child: Child,
    dir: PathBuf,
    http_port: u16,
}

fn free_port() -> Result<u16, InputError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| InputError::new("127.0.0.1", format!("no free port: {e}")))
}

fn find(bin: &str) -> Result<PathBuf, InputError> {
    for d in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(d).join(bin);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(InputError::new(bin, "not installed")
        .hint("install Debian's prosody and prosody-modules (`make test` does)"))
}

/// Read a keyword list (see [`Config::keywords`]).
pub fn load_keywords(path: &Path) -> Result<Vec<String>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "csv") {
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let header = rdr
            .headers()
            .map_err(|e| InputError::new(path, format!("malformed header: {e}")))?
            .clone();
        let col = |n: &str| header.iter().position(|h| h.trim() == n);
        let kw = col("keyword").ok_or_else(|| {
            InputError::new(path, "no `keyword` column").hint("see corpus/keywords.csv")
        })?;
        let label = col("label");
        for (i, r) in rdr.records().enumerate() {
            let r = r.map_err(|e| InputError::new(path, e.to_string()).line(i as u64 + 2))?;
            if label.is_some_and(|l| r.get(l) != Some("sensitive")) {
                continue;
            }
            out.push(r.get(kw).unwrap_or("").trim().to_string());
        }
    } else {
        out.extend(text.lines().map(|l| l.trim().to_string()));
    }
    out.retain(|k| !k.is_empty() && !k.starts_with('#'));
    for (i, k) in out.iter().enumerate() {
        if let Some(why) = crate::corpus::keywords::keyword_problem(k) {
            return Err(
                InputError::new(path, format!("keyword {} `{k}` {why}", i + 1))
                    .hint("remove the box-drawing characters (U+2500–U+257F) from the keyword"),
            );
        }
        if k.chars().any(char::is_control) || k.split('+').any(|p| p.trim().is_empty()) {
            return Err(
                InputError::new(path, format!("keyword {} is malformed: `{k}`", i + 1))
                    .hint("one keyword a line; parts of a combination joined by `+`"),
            );
        }
    }
    Ok(out)
}

/// The `mod_firewall` script censoring `keywords`: one rule a keyword in
/// the `::preroute` chain; an `a+b` combination is one rule whose
/// conditions must all hold (every part somewhere in the body, any order).
pub fn firewall_script(keywords: &[String]) -> String {
    let mut s = String::from(
        "# Made by chatprobe from a keyword list: drop a message whose body holds\n\
         # a keyword (or every part of an a+b combination), and log it.\n::preroute\n",
    );
    for k in keywords {
        s.push_str("\nKIND: message\n");
        for part in k.split('+') {
            // `body#` is the body's text (client stanzas carry no explicit
            // namespace, so `{jabber:client}body#` would never match).
            s.push_str(&format!("INSPECT: body#/={}\n", part.trim()));
        }
        s.push_str(&format!(
            "LOG=chatprobe-drop keyword={k} to=$<@to> body=$<body#>\nDROP.\n"
        ));
    }
    s
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

impl Xmpp {
    /// Write the folder, register the accounts, start Prosody and wait
    /// (≤ 15 s) until it serves.
    pub fn start(cfg: &Config) -> Result<Xmpp, InputError> {
        let prosody = find("prosody")?;
        let prosodyctl = find("prosodyctl")?;
        if !cfg.converse.join("converse.min.js").is_file() {
            return Err(InputError::new(&cfg.converse, "no converse.min.js here")
                .key("--converse")
                .hint("install the npm package converse.js@14 (`make test` does) and pass its dist/ folder"));
        }
        if !valid_domain(&cfg.domain) {
            return Err(InputError::new(
                &cfg.dir,
                format!("`{}` is not a domain name", cfg.domain),
            )
            .key("--domain")
            .hint(
                "use lower-case letters, digits, `-` and dots, as in `localhost` or `chat.example`",
            ));
        }
        let domain = cfg.domain.as_str();
        let accounts = Accounts::load(&cfg.accounts)?;
        let keywords = match &cfg.keywords {
            Some(p) => load_keywords(p)?,
            None => Vec::new(),
        };
        let dir =
            std::path::absolute(&cfg.dir).map_err(|e| InputError::new(&cfg.dir, e.to_string()))?;
        let io = |p: &Path, e: std::io::Error| InputError::new(p, format!("cannot write: {e}"));
        for sub in ["data", "www", "certs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| io(&dir.join(sub), e))?;
        }
        let (http_port, c2s_port) = (free_port()?, free_port()?);
        let vars = [
            ("dir", dir.display().to_string()),
            ("http_port", http_port.to_string()),
            ("c2s_port", c2s_port.to_string()),
            ("domain", domain.to_string()),
        ];
        let conf = dir.join("prosody.cfg.lua");
        let write = |p: PathBuf, text: String| std::fs::write(&p, text).map_err(|e| io(&p, e));
        write(conf.clone(), fill(CONFIG, &vars))?;
        for (page, mode) in PAGES {
            let mut v = vars.to_vec();
            v.push(("view_mode", mode.to_string()));
            write(dir.join("www").join(page), fill(PAGE, &v))?;
        }
        write(dir.join("censor.pfw"), firewall_script(&keywords))?;
        let mut groups = String::from("[chatprobe]\n");
        for a in accounts.accounts.iter().filter(|_| cfg.roster) {
            groups.push_str(&format!("{}@{domain}={}\n", a.login, a.alias));
        }
        write(dir.join("groups.txt"), groups)?;
        let dist = dir.join("www/dist");
        let _ = std::fs::remove_file(&dist);
        let converse = std::path::absolute(&cfg.converse)
            .map_err(|e| InputError::new(&cfg.converse, e.to_string()))?;
        std::os::unix::fs::symlink(&converse, &dist).map_err(|e| io(&dist, e))?;
        for a in &accounts.accounts {
            let pw = accounts.password(a, true)?;
            let out = Command::new(&prosodyctl)
                .arg("--config")
                .arg(&conf)
                .args(["register", &a.login, domain, &pw])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| InputError::new(&prosodyctl, e.to_string()))?;
            if !out.status.success() {
                // Its output may hold the password: say only who failed.
                return Err(InputError::new(
                    &prosodyctl,
                    format!("registering `{}` failed", a.alias),
                ));
            }
        }
        let mut cmd = Command::new(&prosody);
        cmd.arg("--config")
            .arg(&conf)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::process::own_group_dying_with_us(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| InputError::new(&prosody, format!("cannot start: {e}")))?;
        let mut x = Xmpp {
            child,
            dir,
            http_port,
        };
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
                return Ok(x);
            }
            if t0.elapsed() > Duration::from_secs(15) || !matches!(x.child.try_wait(), Ok(None)) {
                let log = std::fs::read_to_string(x.dir.join("prosody.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(InputError::new(&conf, "Prosody did not start")
                    .hint(format!("its log ends: {}", tail.join(" / "))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The platform's base URL (the Converse page is `/files/index.html`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The working folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the censor dropped so far, from Prosody's log.
    pub fn drops(&self) -> Vec<Drop> {
        read_drops(&self.dir.join("prosody.log"))
    }
}

/// The drops logged in a Prosody log file.
pub fn read_drops(log: &Path) -> Vec<Drop> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l.split_once("chatprobe-drop keyword=")?.1;
            let (keyword, rest) = rest.split_once(" to=")?;
            let (to, body) = rest.split_once(" body=")?;
            Some(Drop {
                keyword: keyword.to_string(),
                to: to.to_string(),
                body: body.to_string(),
            })
        })
        .collect()
}

/// Prosody's name for a node of its file store: every character but ASCII
/// letters and digits as `%xx` (its `datamanager`'s encoding).
fn store_name(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// The body of every message in `login@domain`'s archive, oldest first:
/// what Prosody routed to or from the account (a dropped message never
/// reaches it). Read from the folder `dir` the target wrote
/// (`data/DOMAIN/archive/LOGIN.list`, Lua tables with decimal escapes);
/// empty when there is none.
pub fn read_archive(dir: &Path, domain: &str, login: &str) -> Vec<String> {
    let path = dir
        .join("data")
        .join(store_name(domain))
        .join("archive")
        .join(format!("{}.list", store_name(login)));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Each element is a Lua table: its text children first, then its keys
    // (`["name"] = "body";`, `["attr"] = {…};`) in Lua's hash order, which
    // changes from one Prosody process to the next. So a body is the first
    // string of a table, whichever line of it says `["name"] = "body"`.
    struct Table {
        first_string: Option<String>,
        body: bool,
    }
    let mut open: Vec<Table> = Vec::new();
    let mut bodies = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.ends_with('{') {
            open.push(Table {
                first_string: None,
                body: false,
            });
        } else if line.starts_with('}') {
            if let Some(Table {
                first_string: Some(s),
                body: true,
            }) = open.pop()
            {
                bodies.push(s);
            }
        } else if let Some(t) = open.last_mut() {
            if line == r#"["name"] = "body";"# {
                t.body = true;
            } else if line.starts_with('"') && t.first_string.is_none() {
                t.first_string = line.strip_suffix(';').and_then(lua_string);
            }
        }
    }
    bodies
}

/// A Lua string literal as Prosody's serializer writes one (`"…"`, with
/// `\ddd` decimal byte escapes and the usual backslash escapes).
fn lua_string(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let next = *b.get(i + 1)?;
        if next.is_ascii_digit() {
            let digits = b[i + 1..]
                .iter()
                .take(3)
                .take_while(|c| c.is_ascii_digit())
                .count();
            let n: u16 = inner[i + 1..i + 1 + digits].parse().ok()?;
            out.push(u8::try_from(n).ok()?);
            i += 1 + digits;
            continue;
        }
        out.push(match next {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            other => other,
        });
        i += 2;
    }
    String::from_utf8(out).ok()
}

impl std::ops::Drop for Xmpp {
    /// Prosody gets SIGTERM and 5 s to close its stores (a SIGKILL in the
    /// middle of a write could leave an archive torn), then SIGKILL.
    fn drop(&mut self) {
        crate::process::stop_gently(&mut self.child, Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_archive_is_read_as_prosody_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let arch = dir.path().join("data/chat%2etest/archive");
        std::fs::create_dir_all(&arch).unwrap();
        // As Prosody 0.12 wrote it for a text and a file (abridged).
        std::fs::write(
            arch.join("deng.list"),
            "item({\n\t{\n\t\t\"\\231\\129\\171\\233\\148\\133 line \\\"q\\\"\";\n\t\t[\"name\"] = \"body\";\n\t\t[\"attr\"] = {};\n\t};\n\t[\"name\"] = \"message\";\n});\n\
             item({\n\t{\n\t\t\"http://h/file_share/x/img-b05-1a.jpg\";\n\t\t[\"name\"] = \"body\";\n\t};\n\t{\n\t\t\"http://h/file_share/x/img-b05-1a.jpg\";\n\t\t[\"name\"] = \"url\";\n\t};\n});\n",
        )
        .unwrap();
        assert_eq!(
            super::read_archive(dir.path(), "chat.test", "deng"),
            ["火锅 line \"q\"", "http://h/file_share/x/img-b05-1a.jpg"]
        );
        // Another Prosody process orders a table's keys otherwise: the
        // name after the attributes, which may span lines.
        std::fs::write(
            arch.join("wang.list"),
            "item({\n\t[\"attr\"] = {\n\t\t[\"type\"] = \"chat\";\n\t};\n\t{\n\t\t\"a ┼b\";\n\t\t[\"attr\"] = {\n\t\t\t[\"xml:lang\"] = \"en\";\n\t\t};\n\t\t[\"name\"] = \"body\";\n\t};\n\t{\n\t\t\"not a body\";\n\t\t[\"attr\"] = {};\n\t\t[\"name\"] = \"url\";\n\t};\n\t[\"name\"] = \"message\";\n});\n\
             item({\n\t{\n\t\t[\"attr\"] = {};\n\t\t\"second\";\n\t\t[\"name\"] = \"body\";\n\t};\n});\n",
        )
        .unwrap();
        assert_eq!(
            super::read_archive(dir.path(), "chat.test", "wang"),
            ["a ┼b", "second"]
        );
        assert!(super::read_archive(dir.path(), "chat.test", "nobody").is_empty());
        assert_eq!(super::store_name("a.b-c"), "a%2eb%2dc");
    }

    #[test]
    fn a_domain_is_dns_labels() {
        for ok in ["localhost", "chat.example", "xmpp-1.lab.test"] {
            assert!(super::valid_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "Chat.example",
            "a..b",
            "-a.b",
            "a b",
            "a\"b",
            "x.",
            "é.test",
        ] {
            assert!(!super::valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn a_combination_is_one_rule_with_every_part() {
        let s = super::firewall_script(&["法轮功".into(), "刘晓波+诺贝尔".into()]);
        assert_eq!(s.matches("DROP.").count(), 2);
        assert!(s.contains("INSPECT: body#/=刘晓波\nINSPECT: body#/=诺贝尔\n"));
    }
}
