//! Errors: a configuration that fails validation, and one that cannot be
//! loaded.

use std::fmt;

/// What is wrong with a validated setting.
///
/// ```
/// use prodkit_netcfg::{Problem, ServerConfig};
///
/// let mut cfg = ServerConfig::internet_facing();
/// cfg.idle_timeout = std::time::Duration::ZERO;
/// assert_eq!(cfg.validate().unwrap_err().problem(), Problem::Zero);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A duration or count that must be positive is zero.
    Zero,
    /// Two settings are in the wrong order (one must stay below another).
    Order,
    /// A value outside the range the setting allows.
    Range,
}

/// A configuration that fails validation, naming the field at fault.
///
/// ```
/// use std::time::Duration;
/// use prodkit_netcfg::ServerConfig;
///
/// let mut cfg = ServerConfig::internet_facing();
/// cfg.header_read_timeout = Duration::from_secs(60);
/// let err = cfg.validate().unwrap_err();
/// assert_eq!(err.field(), "header_read_timeout");
/// assert!(err.to_string().starts_with("header_read_timeout"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    problem: Problem,
    detail: String,
}

impl ConfigError {
    pub(crate) fn zero(field: &'static str) -> ConfigError {
        ConfigError {
            field,
            problem: Problem::Zero,
            detail: "is zero: give a positive value".to_string(),
        }
    }

    pub(crate) fn order(field: &'static str, detail: String) -> ConfigError {
        ConfigError {
            field,
            problem: Problem::Order,
            detail,
        }
    }

    pub(crate) fn range(field: &'static str, detail: String) -> ConfigError {
        ConfigError {
            field,
            problem: Problem::Range,
            detail,
        }
    }

    /// The field at fault.
    ///
    /// ```
    /// use prodkit_netcfg::DbPoolConfig;
    ///
    /// let mut cfg = DbPoolConfig::internal();
    /// cfg.max_idle = cfg.max_open + 1;
    /// assert_eq!(cfg.validate().unwrap_err().field(), "max_idle");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What kind of problem it is.
    ///
    /// ```
    /// use prodkit_netcfg::{DbPoolConfig, Problem};
    ///
    /// let mut cfg = DbPoolConfig::internal();
    /// cfg.max_idle = cfg.max_open + 1;
    /// assert_eq!(cfg.validate().unwrap_err().problem(), Problem::Order);
    /// ```
    pub fn problem(&self) -> Problem {
        self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.detail)
    }
}

impl std::error::Error for ConfigError {}

/// A configuration that cannot be loaded: an unreadable file, bad syntax, an
/// unknown field, or a value of the wrong form.
///
/// ```
/// use prodkit_netcfg::{LoadError, ServerConfig};
///
/// let err = ServerConfig::internet_facing().with_toml("idle_timout = \"5s\"").unwrap_err();
/// assert!(matches!(err, LoadError::UnknownField { .. }));
/// assert_eq!(err.to_string(), "unknown field idle_timout in TOML");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    Syntax(String),
    /// A field (or an environment variable with the prefix) that the
    /// configuration does not have: a typo would otherwise be ignored.
    UnknownField {
        /// The field or variable as written.
        name: String,
        /// Where: "TOML" or "the environment".
        place: &'static str,
    },
    /// A value of the wrong form for its field.
    BadValue {
        /// The field.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What the field takes.
        expected: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            LoadError::Syntax(e) => write!(f, "invalid TOML: {e}"),
            LoadError::UnknownField { name, place } => write!(f, "unknown field {name} in {place}"),
            LoadError::BadValue {
                field,
                value,
                expected,
            } => write!(f, "{field} = {value}: expected {expected}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
