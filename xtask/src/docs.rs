//! Documentation checks on rustdoc's JSON output (`cargo xtask lint`): every
//! public type and function of a released crate has an example, and nothing
//! the umbrella renders shows a leaf crate's path in its code.
//!
//! rustdoc's JSON output is a nightly feature: without a nightly toolchain the
//! checks say so and are skipped, like miri.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The umbrella, whose rendered examples are pasted into projects that depend
/// on it alone.
const UMBRELLA: &str = "prodkit";

/// Every problem found in the released crates' documentation; `None` when
/// there is no nightly toolchain to produce rustdoc's JSON.
pub(crate) fn check_all(root: &Path) -> Result<Option<Vec<String>>, String> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustdoc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for package in released_libraries(root)? {
        let json = rustdoc_json(root, &package)?;
        if package == UMBRELLA {
            problems.extend(leaf_paths_in_code(&json, &package));
        }
        for (kind, path, file) in missing_examples(&json)? {
            problems.push(format!(
                "{file}: {kind} `{path}` has no example in its documentation"
            ));
        }
    }
    Ok(Some(problems))
}

/// The workspace's library packages under `crates/` that may be published.
fn released_libraries(root: &Path) -> Result<Vec<String>, String> {
    let meta = crate::metadata(root, &["--no-deps"])?;
    let crates = root.join("crates");
    Ok(meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            // `publish = false` reads as an empty list of registries.
            let unpublished = p["publish"].as_array().is_some_and(Vec::is_empty);
            let manifest = Path::new(p["manifest_path"].as_str().unwrap_or_default());
            !unpublished && manifest.starts_with(&crates)
        })
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// `cargo +nightly rustdoc --output-format json` of `package`, all features on.
fn rustdoc_json(root: &Path, package: &str) -> Result<Value, String> {
    let target = root.join("target/rustdoc-json");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root)
        .args(["run", "nightly", "cargo", "rustdoc", "-q", "-p", package])
        .args(["--all-features", "--", "-Z", "unstable-options"])
        .args(["--output-format", "json"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTDOCFLAGS");
    crate::run(cmd)?;
    let file = target
        .join("doc")
        .join(format!("{}.json", package.replace('-', "_")));
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", file.display()))
}

/// An item's kind: the single key of its `inner` object.
fn kind(item: &Value) -> &str {
    item["inner"]
        .as_object()
        .and_then(|o| o.keys().next())
        .map_or("", String::as_str)
}

/// An id as the index's key: a number in current formats, a string in older.
fn key(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_string)
}

fn has_example(item: &Value) -> bool {
    item["docs"].as_str().is_some_and(|d| d.contains("```"))
}

fn file(item: &Value) -> String {
    item["span"]["filename"].as_str().unwrap_or("?").to_string()
}

/// (kind, path, file) of every public type, function and inherent method
/// reachable from the crate root whose documentation has no code block. Trait
/// impls (`Display::fmt`, ...), fields, variants and constants need none.
fn missing_examples(json: &Value) -> Result<Vec<(String, String, String)>, String> {
    let index = json["index"]
        .as_object()
        .ok_or("rustdoc JSON without an index: has its format changed?")?;
    let root = key(&json["root"]);
    let mut seen = std::collections::HashSet::new();
    let mut missing = Vec::new();
    // (item id, the path of the module it is seen in)
    let mut todo = vec![(root, Vec::<String>::new())];
    while let Some((id, prefix)) = todo.pop() {
        let Some(item) = index.get(&id) else {
            continue; // another crate's item, re-exported
        };
        if !seen.insert(id) {
            continue;
        }
        let name = item["name"].as_str().unwrap_or_default();
        let inner = &item["inner"];
        match kind(item) {
            "module" => {
                let mut path = prefix.clone();
                path.push(name.to_string());
                for child in inner["module"]["items"].as_array().into_iter().flatten() {
                    todo.push((key(child), path.clone()));
                }
            }
            "use" if !inner["use"]["id"].is_null() => {
                todo.push((key(&inner["use"]["id"]), prefix));
            }
            k @ ("struct" | "enum" | "union" | "trait" | "function" | "macro") => {
                let path = [prefix.as_slice(), &[name.to_string()]].concat().join("::");
                if !has_example(item) {
                    missing.push((k.to_string(), path.clone(), file(item)));
                }
                for imp in inner[k]["impls"].as_array().into_iter().flatten() {
                    let Some(imp) = index.get(&key(imp)) else {
                        continue;
                    };
                    let imp = &imp["inner"]["impl"];
                    let inherent = imp["trait"].is_null()
                        && imp["blanket_impl"].is_null()
                        && imp["is_synthetic"] != true;
                    if !inherent {
                        continue;
                    }
                    for m in imp["items"].as_array().into_iter().flatten() {
                        let Some(m) = index.get(&key(m)) else {
                            continue;
                        };
                        if m["visibility"] == "public" && kind(m) == "function" && !has_example(m) {
                            let name = m["name"].as_str().unwrap_or_default();
                            missing.push(("method".into(), format!("{path}::{name}"), file(m)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    missing.sort();
    Ok(missing)
}

/// Code lines of every documentation the umbrella renders (its own items, and
/// any leaf item it would inline) that name a leaf crate (`prodkit_pool::`):
/// pasted into a project that depends on `prodkit` alone, they fail with E0432.
fn leaf_paths_in_code(json: &Value, package: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for item in json["index"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
    {
        let Some(docs) = item["docs"].as_str() else {
            continue;
        };
        for line in code_lines(docs) {
            if names_a_leaf(line) {
                problems.push(format!(
                    "{}: {package} renders an example naming a leaf crate, write `prodkit::` \
                     instead: {}",
                    file(item),
                    line.trim()
                ));
            }
        }
    }
    problems
}

/// The lines inside fenced code blocks.
fn code_lines(docs: &str) -> impl Iterator<Item = &str> {
    let mut inside = false;
    docs.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            return false;
        }
        inside
    })
}

/// `prodkit_<name>` used as a path (`prodkit_pool::`, `use prodkit_pool`,
/// `extern crate prodkit_pool`).
fn names_a_leaf(line: &str) -> bool {
    line.match_indices("prodkit_").any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let rest = &line[at + "prodkit_".len()..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(rest.len());
        let after = &rest[name_len..];
        word_start
            && name_len > 0
            && (after.starts_with("::")
                || line[..at].trim_end().ends_with("use")
                || line[..at].trim_end().ends_with("crate"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, name: &str, docs: &str, inner: Value) -> Value {
        serde_json::json!({
            "name": name, "docs": docs, "visibility": "public",
            "span": {"filename": "src/lib.rs"},
            "inner": {kind: inner},
        })
    }

    #[test]
    fn types_and_inherent_methods_without_examples_are_found() {
        let json = serde_json::json!({
            "root": 0,
            "index": {
                "0": item("module", "k", "", serde_json::json!({"items": [1, 2, 5]})),
                "1": item("struct", "Shown", "```\nx\n```", serde_json::json!({"impls": [3, 4]})),
                "2": item("use", "Bare", "", serde_json::json!({"id": 6})),
                "3": item("impl", "", "", serde_json::json!({
                    "trait": null, "blanket_impl": null, "is_synthetic": false, "items": [7, 8]})),
                "4": item("impl", "", "", serde_json::json!({
                    "trait": {"path": "Display"}, "blanket_impl": null, "is_synthetic": false,
                    "items": [9]})),
                "5": item("use", "quanta", "", serde_json::json!({"id": 99})),
                "6": item("enum", "Bare", "no example", serde_json::json!({"impls": []})),
                "7": item("function", "bare_method", "words", serde_json::json!({})),
                "8": item("function", "shown_method", "```\ny\n```", serde_json::json!({})),
                "9": item("function", "fmt", "", serde_json::json!({})),
            }
        });
        let found: Vec<_> = missing_examples(&json)
            .unwrap()
            .into_iter()
            .map(|(kind, path, _)| format!("{kind} {path}"))
            .collect();
        assert_eq!(found, ["enum k::Bare", "method k::Shown::bare_method"]);
    }

    #[test]
    fn leaf_paths_are_found_in_code_only() {
        assert!(names_a_leaf("use prodkit_pool::Pool;"));
        assert!(names_a_leaf("let p = prodkit_batch::Batcher::builder();"));
        assert!(names_a_leaf("use prodkit_pool as pool;"));
        assert!(!names_a_leaf("use prodkit::pool::Pool;"));
        assert!(!names_a_leaf("let my_prodkit_pool = 1;"));
        let docs = "`prodkit_pool::Pool` is `prodkit::pool::Pool`.\n```\nuse prodkit::pool;\n\
                    ```\n```rust\nuse prodkit_pool::Pool;\n```";
        let code: Vec<_> = code_lines(docs).filter(|l| names_a_leaf(l)).collect();
        assert_eq!(code, ["use prodkit_pool::Pool;"]);
    }
}
