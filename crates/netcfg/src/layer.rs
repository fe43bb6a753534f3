//! Layering: a profile, then a TOML file, then environment variables, each
//! setting only the fields it names; unknown names are refused. The three
//! configurations share this through the [`settings!`] macro, which lists
//! their fields once.

use std::time::Duration;

use crate::LoadError;

/// A setting's type: how it is read from TOML and from text, and written.
pub(crate) trait Setting: Sized {
    /// What the setting takes, for error messages.
    const EXPECTED: &'static str;
    fn from_text(text: &str) -> Option<Self>;
    fn from_toml(value: &toml::Value) -> Option<Self>;
    fn to_toml(&self) -> toml::Value;
}

impl Setting for Duration {
    const EXPECTED: &'static str = "a duration such as \"10s\", \"250ms\" or \"1m 30s\"";

    fn from_text(text: &str) -> Option<Self> {
        humantime::parse_duration(text.trim()).ok()
    }

    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_str().and_then(Self::from_text)
    }

    fn to_toml(&self) -> toml::Value {
        toml::Value::String(humantime::format_duration(*self).to_string())
    }
}

impl Setting for u64 {
    const EXPECTED: &'static str = "a whole number from 0 to 9223372036854775807";

    fn from_text(text: &str) -> Option<Self> {
        // Up to what TOML holds, so that the dump loads back the same.
        text.trim()
            .parse()
            .ok()
            .filter(|&n| i64::try_from(n).is_ok())
    }

    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_integer().and_then(|n| u64::try_from(n).ok())
    }

    fn to_toml(&self) -> toml::Value {
        toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Setting for bool {
    const EXPECTED: &'static str = "true or false";

    fn from_text(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }

    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_bool()
    }

    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

/// Where a layer's value comes from.
pub(crate) enum Source<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

/// Reads `source` as a `T` for `field`.
pub(crate) fn read<T: Setting>(field: &'static str, source: Source<'_>) -> Result<T, LoadError> {
    let parsed = match &source {
        Source::Toml(v) => T::from_toml(v),
        Source::Text(t) => T::from_text(t),
    };
    parsed.ok_or_else(|| LoadError::BadValue {
        field,
        value: match source {
            Source::Toml(v) => v.to_string(),
            Source::Text(t) => format!("{t:?}"),
        },
        expected: T::EXPECTED,
    })
}

/// What a configuration offers the layers.
pub(crate) trait Layered {
    /// Sets `name` from `source`; `Ok(false)` when there is no such field.
    fn set(&mut self, name: &str, source: Source<'_>) -> Result<bool, LoadError>;
    /// Every field and its value, in declaration order.
    fn entries(&self) -> Vec<(&'static str, toml::Value)>;
}

pub(crate) fn apply_toml<T: Layered>(cfg: &mut T, text: &str) -> Result<(), LoadError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LoadError::Syntax(e.message().to_string()))?;
    for (name, value) in &table {
        if !cfg.set(name, Source::Toml(value))? {
            return Err(LoadError::UnknownField {
                name: name.clone(),
                place: "TOML",
            });
        }
    }
    Ok(())
}

pub(crate) fn apply_file<T: Layered>(cfg: &mut T, path: &std::path::Path) -> Result<(), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    apply_toml(cfg, &text)
}

/// Applies the variables named `{prefix}_{FIELD}` (the field's name in
/// capitals); any other variable that starts with `{prefix}_` is an unknown
/// field.
pub(crate) fn apply_vars<T: Layered>(
    cfg: &mut T,
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), LoadError> {
    let start = format!("{prefix}_");
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(&start))
        .collect();
    // A fixed order, so that the first error is the same every time.
    vars.sort();
    for (name, value) in vars {
        let field = name[start.len()..].to_ascii_lowercase();
        if !cfg.set(&field, Source::Text(&value))? {
            return Err(LoadError::UnknownField {
                name,
                place: "the environment",
            });
        }
    }
    Ok(())
}

/// The configuration as TOML, one field a line: what is in force after every
/// layer, to log at start-up.
pub(crate) fn dump<T: Layered>(cfg: &T) -> String {
    let mut out = String::new();
    for (name, value) in cfg.entries() {
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

/// Declares a configuration's fields once: the struct with its documented
/// public fields, and the layering (set by name, list the entries).
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $crate::layer::Layered for $name {
            fn set(
                &mut self,
                name: &str,
                source: $crate::layer::Source<'_>,
            ) -> Result<bool, $crate::LoadError> {
                match name {
                    $(
                        stringify!($field) => {
                            self.$field = $crate::layer::read(stringify!($field), source)?;
                            Ok(true)
                        }
                    )*
                    _ => Ok(false),
                }
            }

            fn entries(&self) -> Vec<(&'static str, toml::Value)> {
                vec![$((stringify!($field), $crate::layer::Setting::to_toml(&self.$field)),)*]
            }
        }
    };
}

/// The loading methods every configuration has, with their examples.
macro_rules! loading {
    ($name:ident, $profile:ident, $field:literal, $value:literal, $env_field:literal) => {
        impl $name {
            /// Sets the fields a TOML document names, over the present
            /// values; an unknown field is an error (a typo is not ignored).
            ///
            /// # Errors
            /// [`LoadError`](crate::LoadError): bad syntax, an unknown
            /// field, a value of the wrong form.
            ///
            /// ```
            #[doc = concat!("use prodkit_netcfg::", stringify!($name), ";")]
            ///
            #[doc = concat!("let cfg = ", stringify!($name), "::", stringify!($profile), "().with_toml(\"", $field, " = ", $value, "\")?;")]
            #[doc = concat!("assert!(cfg.effective().contains(\"", $field, " = ", $value, "\"));")]
            /// # Ok::<(), prodkit_netcfg::LoadError>(())
            /// ```
            pub fn with_toml(mut self, text: &str) -> Result<Self, crate::LoadError> {
                crate::layer::apply_toml(&mut self, text)?;
                Ok(self)
            }

            /// [`with_toml`](Self::with_toml) on the contents of a file.
            ///
            /// # Errors
            /// As `with_toml`, and [`LoadError::Io`](crate::LoadError::Io)
            /// when the file cannot be read.
            ///
            /// ```
            #[doc = concat!("use prodkit_netcfg::", stringify!($name), ";")]
            ///
            /// let path = std::env::temp_dir().join(format!("netcfg-doc-{}.toml", std::process::id()));
            #[doc = concat!("std::fs::write(&path, \"", $field, " = ", $value, "\\n\")?;")]
            #[doc = concat!("let cfg = ", stringify!($name), "::", stringify!($profile), "().with_file(&path)?;")]
            /// std::fs::remove_file(&path)?;
            #[doc = concat!("assert!(cfg.effective().contains(\"", $field, " = ", $value, "\"));")]
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn with_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, crate::LoadError> {
                crate::layer::apply_file(&mut self, path.as_ref())?;
                Ok(self)
            }

            /// Sets the fields named by environment variables
            /// `{prefix}_{FIELD}` (the field in capitals), over the
            /// present values; a variable with the prefix that names no
            /// field is an error.
            ///
            /// # Errors
            /// As [`with_vars`](Self::with_vars).
            ///
            /// ```
            #[doc = concat!("use prodkit_netcfg::", stringify!($name), ";")]
            ///
            /// // With no variable set, nothing changes.
            #[doc = concat!("let cfg = ", stringify!($name), "::", stringify!($profile), "().with_env(\"NETCFG_DOC_UNSET\")?;")]
            #[doc = concat!("assert_eq!(cfg, ", stringify!($name), "::", stringify!($profile), "());")]
            /// # Ok::<(), prodkit_netcfg::LoadError>(())
            /// ```
            pub fn with_env(self, prefix: &str) -> Result<Self, crate::LoadError> {
                // Variables whose names or values are not Unicode cannot be
                // settings: they are left out.
                let vars = std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
                self.with_vars(prefix, vars)
            }

            /// [`with_env`](Self::with_env) over the variables given,
            /// rather than the process's.
            ///
            /// # Errors
            /// [`LoadError`](crate::LoadError): an unknown field, a value
            /// of the wrong form.
            ///
            /// ```
            #[doc = concat!("use prodkit_netcfg::", stringify!($name), ";")]
            ///
            #[doc = concat!("let vars = [(\"APP_", $env_field, "\".to_string(), \"7\".to_string())];")]
            #[doc = concat!("let cfg = ", stringify!($name), "::", stringify!($profile), "().with_vars(\"APP\", vars)?;")]
            #[doc = concat!("assert_ne!(cfg, ", stringify!($name), "::", stringify!($profile), "());")]
            /// # Ok::<(), prodkit_netcfg::LoadError>(())
            /// ```
            pub fn with_vars(
                mut self,
                prefix: &str,
                vars: impl IntoIterator<Item = (String, String)>,
            ) -> Result<Self, crate::LoadError> {
                crate::layer::apply_vars(&mut self, prefix, vars)?;
                Ok(self)
            }

            /// Every field and its value as TOML, one a line: the
            /// configuration in force, to log at start-up. Loading it back
            /// gives the same configuration.
            ///
            /// ```
            #[doc = concat!("use prodkit_netcfg::", stringify!($name), ";")]
            ///
            #[doc = concat!("let cfg = ", stringify!($name), "::", stringify!($profile), "();")]
            #[doc = concat!("let again = ", stringify!($name), "::", stringify!($profile), "().with_toml(&cfg.effective())?;")]
            /// assert_eq!(again, cfg);
            /// # Ok::<(), prodkit_netcfg::LoadError>(())
            /// ```
            pub fn effective(&self) -> String {
                crate::layer::dump(self)
            }
        }
    };
}

pub(crate) use {loading, settings};
