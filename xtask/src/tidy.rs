//! Tidy checks: the layout rules of STYLE.md and docs/ARCHITECTURE.md, run by
//! `cargo xtask lint` and, as plain tests, by `cargo test --workspace`.

use std::fs;
use std::path::{Path, PathBuf};

/// Peer crates: compared against in `benches/`, never depended on by a library.
const PEERS: &[&str] = &[
    "governor",
    "moka",
    "mini-moka",
    "quick_cache",
    "stretto",
    "lru",
    "rayon",
    "threadpool",
    "serde_json",
    "sonic-rs",
    "mimalloc",
    "tikv-jemallocator",
    "leaky-bucket",
];

/// The package that re-exports the leaves; it may depend on all of them.
const UMBRELLA: &str = "prodkit";
/// Test support: leaves may use it as a dev-dependency.
const TESTKIT: &str = "prodkit-testkit";

/// Every problem found, as a sentence naming the file.
pub(crate) fn check_all(root: &Path) -> Result<Vec<String>, String> {
    let ws = Workspace::load(root)?;
    let mut problems = Vec::new();
    problems.extend(lints_inherited(&ws));
    problems.extend(leaf_edges(&ws, &allowed_edges(root)?));
    problems.extend(no_peers_in_libraries(&ws));
    problems.extend(safety_comments(root));
    problems.extend(forbid_unsafe_where_unused(&ws));
    problems.extend(msrv_covers_dependencies(root)?);
    Ok(problems)
}

/// The workspace's own packages, from `cargo metadata --no-deps`.
struct Workspace {
    root: PathBuf,
    packages: Vec<Package>,
}

struct Package {
    name: String,
    manifest: PathBuf,
    /// (dependency name, kind: "normal", "dev" or "build")
    deps: Vec<(String, String)>,
}

impl Package {
    fn dir(&self) -> &Path {
        self.manifest.parent().unwrap()
    }

    fn is_library_crate(&self, root: &Path) -> bool {
        self.dir().starts_with(root.join("crates"))
    }
}

impl Workspace {
    fn load(root: &Path) -> Result<Workspace, String> {
        let meta = crate::metadata(root, &["--no-deps"])?;
        let packages = meta["packages"]
            .as_array()
            .ok_or("cargo metadata: no packages")?
            .iter()
            .map(|p| Package {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                manifest: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
                deps: p["dependencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        let name = d["name"].as_str().unwrap_or_default().to_string();
                        (name, d["kind"].as_str().unwrap_or("normal").to_string())
                    })
                    .collect(),
            })
            .collect();
        Ok(Workspace {
            root: root.to_path_buf(),
            packages,
        })
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every package has `[lints] workspace = true`.
fn lints_inherited(ws: &Workspace) -> Vec<String> {
    ws.packages
        .iter()
        .filter(|p| !manifest_inherits_lints(&fs::read_to_string(&p.manifest).unwrap_or_default()))
        .map(|p| {
            format!(
                "{}: add `[lints] workspace = true`",
                rel(&ws.root, &p.manifest)
            )
        })
        .collect()
}

fn manifest_inherits_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

/// The leaf-to-leaf edges docs/ARCHITECTURE.md allows: lines holding
/// `` `prodkit-a` -> `prodkit-b` ``.
fn allowed_edges(root: &Path) -> Result<Vec<(String, String)>, String> {
    let path = root.join("docs/ARCHITECTURE.md");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parse_edges(&text))
}

fn parse_edges(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (from, to) = line.split_once("` -> `")?;
            let from = from.rsplit('`').next()?;
            let to = to.split('`').next()?;
            (from.starts_with("prodkit-") && to.starts_with("prodkit-"))
                .then(|| (from.to_string(), to.to_string()))
        })
        .collect()
}

/// A leaf depends on no other leaf, but through an allowed edge (dev-dependencies
/// on testkit are always fine, and a dev-dependency on itself, which turns its
/// features on in its tests, pulls in nothing).
fn leaf_edges(ws: &Workspace, allowed: &[(String, String)]) -> Vec<String> {
    let leaves: Vec<&Package> = ws
        .packages
        .iter()
        .filter(|p| p.is_library_crate(&ws.root) && p.name != UMBRELLA)
        .collect();
    let mut problems = Vec::new();
    for leaf in &leaves {
        for (dep, kind) in &leaf.deps {
            if !leaves.iter().any(|l| &l.name == dep) {
                continue;
            }
            if kind == "dev" && (dep == TESTKIT || dep == &leaf.name) {
                continue;
            }
            if !allowed.iter().any(|(a, b)| a == &leaf.name && b == dep) {
                problems.push(format!(
                    "{}: {} depends on {dep} ({kind}); leaves are independent unless \
                     docs/ARCHITECTURE.md lists `{}` -> `{dep}`",
                    rel(&ws.root, &leaf.manifest),
                    leaf.name,
                    leaf.name
                ));
            }
        }
    }
    problems
}

/// Peer crates appear in no library crate's normal or build dependencies.
fn no_peers_in_libraries(ws: &Workspace) -> Vec<String> {
    ws.packages
        .iter()
        .filter(|p| p.is_library_crate(&ws.root))
        .flat_map(|p| {
            p.deps
                .iter()
                .filter(|(dep, kind)| kind != "dev" && PEERS.contains(&dep.as_str()))
                .map(move |(dep, _)| {
                    format!(
                        "{}: peer crate {dep} belongs in benches/ only",
                        rel(&ws.root, &p.manifest)
                    )
                })
        })
        .collect()
}

/// The Rust sources of the workspace, outside `target/`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Written in two halves so that this file does not match its own check.
const UNSAFE_BLOCK: &str = concat!("unsafe", " {");
const UNSAFE_IMPL: &str = concat!("unsafe", " impl");

/// Every unsafe block or impl is preceded by a `// SAFETY:` comment.
fn safety_comments(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["crates", "benches", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for line in missing_safety_comments(&text) {
            problems.push(format!(
                "{}:{line}: unsafe code without a `// SAFETY:` comment above it",
                rel(root, &file)
            ));
        }
    }
    problems
}

/// 1-based line numbers of unsafe blocks and impls with no SAFETY comment.
fn missing_safety_comments(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        if !(code.contains(UNSAFE_BLOCK) || code.trim_start().starts_with(UNSAFE_IMPL)) {
            continue;
        }
        if line.contains("SAFETY:") {
            continue;
        }
        let documented = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("//") || l.starts_with("#["))
            .any(|l| l.contains("SAFETY:"));
        if !documented {
            missing.push(i + 1);
        }
    }
    missing
}

/// A library crate that writes no unsafe code says so with `#![forbid(unsafe_code)]`.
fn forbid_unsafe_where_unused(ws: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    for p in ws.packages.iter().filter(|p| p.is_library_crate(&ws.root)) {
        let mut files = Vec::new();
        rust_files(&p.dir().join("src"), &mut files);
        let uses_unsafe = files.iter().any(|f| {
            fs::read_to_string(f).unwrap_or_default().lines().any(|l| {
                let code = l.split("//").next().unwrap_or_default();
                code.contains(UNSAFE_BLOCK) || code.contains(UNSAFE_IMPL)
            })
        });
        let lib = p.dir().join("src/lib.rs");
        let forbids = fs::read_to_string(&lib).is_ok_and(|t| t.contains("#![forbid(unsafe_code)]"));
        if !uses_unsafe && !forbids {
            problems.push(format!(
                "{}: writes no unsafe code, so add `#![forbid(unsafe_code)]`",
                rel(&ws.root, &lib)
            ));
        }
    }
    problems
}

/// The declared `rust-version` is at least what every locked dependency declares.
fn msrv_covers_dependencies(root: &Path) -> Result<Vec<String>, String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let declared = manifest
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("rust-version")?
                .trim()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .ok_or("Cargo.toml: no rust-version in [workspace.package]")?;
    let declared_v = parse_version(&declared).ok_or("Cargo.toml: rust-version is not a version")?;
    let meta = crate::metadata(root, &[])?;
    let mut problems = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let Some(needed) = p["rust_version"].as_str() else {
            continue;
        };
        if parse_version(needed).is_some_and(|v| v > declared_v) {
            problems.push(format!(
                "Cargo.toml: rust-version {declared} is below the {needed} that {} {} needs",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?")
            ));
        }
    }
    Ok(problems)
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        Workspace::load(&crate::root()).unwrap()
    }

    fn assert_none(problems: Vec<String>) {
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn every_package_inherits_workspace_lints() {
        assert_none(lints_inherited(&ws()));
    }

    #[test]
    fn leaves_are_independent_but_for_allowed_edges() {
        assert_none(leaf_edges(&ws(), &allowed_edges(&crate::root()).unwrap()));
    }

    #[test]
    fn peer_crates_stay_in_benches() {
        assert_none(no_peers_in_libraries(&ws()));
    }

    #[test]
    fn unsafe_code_carries_safety_comments() {
        assert_none(safety_comments(&crate::root()));
    }

    #[test]
    fn crates_without_unsafe_forbid_it() {
        assert_none(forbid_unsafe_where_unused(&ws()));
    }

    #[test]
    fn msrv_covers_every_locked_dependency() {
        assert_none(msrv_covers_dependencies(&crate::root()).unwrap());
    }

    // The checks themselves, on small inputs, so a broken check cannot pass silently.

    #[test]
    fn lints_section_is_recognised() {
        assert!(manifest_inherits_lints(
            "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(!manifest_inherits_lints(
            "[package]\nname = \"a\"\n[lints.rust]\nworkspace = true\n"
        ));
        assert!(!manifest_inherits_lints(
            "[lints]\n[dependencies]\nworkspace = true\n"
        ));
    }

    #[test]
    fn edges_are_parsed_from_prose() {
        let text = "- `prodkit-jsonfast` -> `prodkit-bufpool`, behind the `bufpool` feature\n\
                    - `serde` -> `prodkit-x` is not ours\n";
        assert_eq!(
            parse_edges(text),
            vec![("prodkit-jsonfast".into(), "prodkit-bufpool".into())]
        );
    }

    #[test]
    fn unsafe_without_comment_is_found() {
        let block = UNSAFE_BLOCK;
        let src = format!(
            "fn a() {{\n    // SAFETY: fine\n    {block} x() }};\n}}\nfn b() {{\n    let y = {block} z() }};\n}}\n\
             // SAFETY: multi-line\n// reason\n#[allow(x)]\n{UNSAFE_IMPL} Send for T {{}}\n\
             // {block} in a comment is fine\n"
        );
        assert_eq!(missing_safety_comments(&src), vec![6]);
    }

    #[test]
    fn leaf_edge_rule_flags_unlisted_edges_only() {
        let root = PathBuf::from("/ws");
        let pkg = |name: &str, deps: &[(&str, &str)]| Package {
            name: name.into(),
            manifest: root.join("crates").join(name).join("Cargo.toml"),
            deps: deps
                .iter()
                .map(|(d, k)| (d.to_string(), k.to_string()))
                .collect(),
        };
        let ws = Workspace {
            root: root.clone(),
            packages: vec![
                pkg(
                    "prodkit-a",
                    &[("prodkit-b", "normal"), ("prodkit-testkit", "dev")],
                ),
                pkg("prodkit-b", &[("prodkit-c", "normal")]),
                pkg("prodkit-c", &[("rayon", "normal"), ("moka", "dev")]),
                pkg("prodkit-testkit", &[]),
                pkg("prodkit", &[("prodkit-a", "normal")]),
            ],
        };
        let allowed = vec![("prodkit-a".to_string(), "prodkit-b".to_string())];
        let problems = leaf_edges(&ws, &allowed);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("prodkit-b depends on prodkit-c"));
        let peers = no_peers_in_libraries(&ws);
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert!(peers[0].contains("rayon"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("1.88") > parse_version("1.9.0"));
        assert_eq!(parse_version("1.65.0"), Some((1, 65, 0)));
        assert_eq!(parse_version("x"), None);
    }
}
