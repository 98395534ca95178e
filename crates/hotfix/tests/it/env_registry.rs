//! The environment-variable registry (`hotfix_core::env_vars`) against the
//! sources and the README: a variable read anywhere is registered, and the
//! README's table lists exactly the settings and secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hotfix_core::env_vars::{ALL, Kind, get};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// String literals of `s` that look like environment variable names:
/// `"HOTFIX_…"` anywhere, and any upper-case literal handed to a reader
/// of the environment (`env::var("X")`, `var_os("X")`, `secret("X")`,
/// `env_value("X")`).
fn env_literals(s: &str) -> Vec<String> {
    let mut found = vec![];
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find('"') {
        let start = i + off + 1;
        let Some(len) = s[start..].find('"') else {
            break;
        };
        let lit = &s[start..start + len];
        let is_name = !lit.is_empty()
            && lit
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && lit.starts_with(|c: char| c.is_ascii_uppercase());
        if is_name {
            let before = &s[..start - 1];
            let read = ["env::var(", "var_os(", "secret(", "env_value("]
                .iter()
                .any(|r| before.ends_with(r));
            if lit.starts_with("HOTFIX_") && lit.len() > "HOTFIX_".len() || read {
                found.push(lit.to_string());
            }
        }
        i = start + len + 1;
        if i >= bytes.len() {
            break;
        }
    }
    found
}

#[test]
fn every_variable_the_sources_name_is_registered() {
    let mut files = vec![];
    for krate in std::fs::read_dir(root().join("crates"))
        .expect("crates")
        .flatten()
    {
        rust_files(&krate.path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let mut missing = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for name in env_literals(&text) {
            if get(&name).is_none() {
                missing.insert(format!(
                    "{name} ({})",
                    f.strip_prefix(root()).unwrap_or(f).display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in hotfix_core::env_vars: {missing:?}"
    );
}

#[test]
fn the_scanner_sees_reads_and_hotfix_names() {
    let src = r#"let a = std::env::var("FOO_BAR"); let b = secret("X1"); let c = "HOTFIX_Y"; let d = "GET"; let e = "HOTFIX_";"#;
    assert_eq!(env_literals(src), vec!["FOO_BAR", "X1", "HOTFIX_Y"]);
}

/// The names of the README's "Environment variables" table.
fn readme_table() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let start = readme
        .find("\n## Environment variables")
        .expect("the section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut names = BTreeSet::new();
    for line in section[..end].lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or("");
        for part in first.split('`').skip(1).step_by(2) {
            names.insert(part.to_string());
        }
    }
    names
}

#[test]
fn the_readme_table_lists_exactly_the_settings_and_secrets() {
    let table = readme_table();
    let registered: BTreeSet<String> = ALL
        .iter()
        .filter(|v| matches!(v.kind, Kind::Setting | Kind::Secret))
        .map(|v| v.name.to_string())
        .collect();
    let undocumented: Vec<_> = registered.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "registered but not in the README table: {undocumented:?}; in the table but not registered: {unknown:?}"
    );
    // What hotfix hands to programs is documented with those programs.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    for v in ALL.iter().filter(|v| v.kind == Kind::Passed) {
        assert!(
            readme.contains(v.name),
            "{} (passed to {}) is not in the README",
            v.name,
            v.by
        );
    }
}

/// Code takes a variable's name from the registry (`env_vars::HOTFIX_USER`),
/// never writes it again: a rename then changes one place. Left out: clap
/// attributes (they want a literal), unit-test modules, and the test
/// support crate (it does not depend on the core).
#[test]
fn the_sources_take_the_names_from_the_registry() {
    let mut files = vec![];
    for krate in std::fs::read_dir(root().join("crates"))
        .expect("crates")
        .flatten()
    {
        if krate.file_name() == "hotfix-testkit" {
            continue;
        }
        rust_files(&krate.path().join("src"), &mut files);
    }
    let mut written = vec![];
    for f in files.iter().filter(|f| !f.ends_with("env_vars.rs")) {
        let text = std::fs::read_to_string(f).expect("read");
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("#[") {
                continue;
            }
            for v in ALL {
                if line.contains(&format!("\"{}\"", v.name)) {
                    written.push(format!(
                        "{}:{}: {}",
                        f.strip_prefix(root()).unwrap_or(f).display(),
                        i + 1,
                        v.name
                    ));
                }
            }
        }
    }
    assert!(
        written.is_empty(),
        "use hotfix_core::env_vars::NAME instead of the literal: {written:?}"
    );
}
