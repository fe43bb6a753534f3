//! Finding the PostgreSQL server binaries (`initdb` and `postgres`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where to look for the server binaries, in DESIGN.md's order.
///
/// `PRODKIT_PG_BIN`, when set, is the only place searched: an explicit choice is
/// never silently replaced by another installation.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// `PRODKIT_PG_BIN`.
    pub pg_bin: Option<PathBuf>,
    /// The `PATH` to search for `pg_config` and for the binaries themselves.
    pub path: Option<OsString>,
    /// Folder holding one `<version>/bin` per installed major version
    /// (`/usr/lib/postgresql` on Debian); the newest is used.
    pub versions_root: PathBuf,
}

impl Discovery {
    /// The search the environment asks for.
    pub fn from_env() -> Discovery {
        Discovery {
            pg_bin: std::env::var_os("PRODKIT_PG_BIN")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            path: std::env::var_os("PATH"),
            versions_root: PathBuf::from("/usr/lib/postgresql"),
        }
    }

    /// Returns the first folder holding both `initdb` and `postgres`.
    ///
    /// # Errors
    /// [`NotFound`], listing every folder that was searched.
    pub fn find(&self) -> Result<PathBuf, NotFound> {
        let candidates = self.candidates();
        match candidates.iter().find(|dir| has_server_binaries(dir)) {
            Some(dir) => Ok(dir.clone()),
            None => Err(NotFound {
                searched: candidates,
            }),
        }
    }

    /// Every folder to try, in order.
    fn candidates(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.pg_bin {
            return vec![dir.clone()];
        }
        let path_dirs: Vec<PathBuf> = match &self.path {
            Some(path) => std::env::split_paths(path).collect(),
            None => Vec::new(),
        };
        let mut out = Vec::new();
        if let Some(pg_config) = path_dirs
            .iter()
            .map(|d| d.join("pg_config"))
            .find(|p| is_executable(p))
            && let Some(bindir) = pg_config_bindir(&pg_config)
        {
            out.push(bindir);
        }
        out.extend(path_dirs);
        out.extend(newest_first(&self.versions_root));
        out.dedup();
        out
    }
}

/// No folder searched holds the server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// The folders that were searched, in order.
    pub searched: Vec<PathBuf>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no PostgreSQL server binaries (initdb, postgres) found")?;
        if !self.searched.is_empty() {
            let dirs: Vec<String> = self
                .searched
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            write!(f, " in {}", dirs.join(":"))?;
        }
        f.write_str(
            "; install them (Debian: apt-get install postgresql), \
             point PRODKIT_PG_BIN at their folder, or set DATABASE_URL to an existing server",
        )
    }
}

impl std::error::Error for NotFound {}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let out = Command::new(pg_config).arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `<root>/<major>/bin` for every numeric `<major>`, the highest version first.
fn newest_first(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("prodkit-testkit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fake_bin(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for name in names {
            let p = dir.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn newest_major_version_wins_numerically() {
        let root = scratch("versions");
        for v in ["9.6", "10", "15", "notaversion"] {
            fake_bin(&root.join(v).join("bin"), &["initdb", "postgres"]);
        }
        let d = Discovery {
            pg_bin: None,
            path: Some(OsString::new()),
            versions_root: root.clone(),
        };
        assert_eq!(d.find().unwrap(), root.join("15/bin"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn path_comes_before_the_versions_root_and_needs_both_binaries() {
        let root = scratch("path");
        fake_bin(&root.join("only-initdb"), &["initdb"]);
        fake_bin(&root.join("both"), &["initdb", "postgres"]);
        fake_bin(&root.join("versions/15/bin"), &["initdb", "postgres"]);
        let path = std::env::join_paths([root.join("only-initdb"), root.join("both")]).unwrap();
        let d = Discovery {
            pg_bin: None,
            path: Some(path),
            versions_root: root.join("versions"),
        };
        assert_eq!(d.find().unwrap(), root.join("both"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn non_executable_files_do_not_count() {
        let root = scratch("noexec");
        fake_bin(&root.join("bin"), &["initdb", "postgres"]);
        let p = root.join("bin/postgres");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let d = Discovery {
            pg_bin: None,
            path: Some(root.join("bin").into_os_string()),
            versions_root: root.join("none"),
        };
        assert_eq!(d.find().unwrap_err().searched, vec![root.join("bin")]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn explicit_pg_bin_is_the_only_place_searched() {
        let root = scratch("explicit");
        fake_bin(&root.join("versions/15/bin"), &["initdb", "postgres"]);
        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let d = Discovery {
            pg_bin: Some(empty.clone()),
            path: None,
            versions_root: root.join("versions"),
        };
        let err = d.find().unwrap_err();
        assert_eq!(err.searched, vec![empty]);
        let msg = err.to_string();
        assert!(msg.starts_with("no PostgreSQL server binaries"), "{msg}");
        assert!(
            msg.contains("apt-get install postgresql") && msg.contains("DATABASE_URL"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "the message is one line: {msg}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn pg_config_bindir_comes_first() {
        let root = scratch("pgconfig");
        let real = root.join("real");
        fake_bin(&real, &["initdb", "postgres"]);
        let tools = root.join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        let pg_config = tools.join("pg_config");
        std::fs::write(&pg_config, format!("#!/bin/sh\necho {}\n", real.display())).unwrap();
        std::fs::set_permissions(&pg_config, std::fs::Permissions::from_mode(0o755)).unwrap();
        fake_bin(&root.join("later"), &["initdb", "postgres"]);
        let path = std::env::join_paths([tools, root.join("later")]).unwrap();
        let d = Discovery {
            pg_bin: None,
            path: Some(path),
            versions_root: root.join("none"),
        };
        assert_eq!(d.find().unwrap(), real);
        std::fs::remove_dir_all(root).unwrap();
    }
}
