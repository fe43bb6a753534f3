//! Profiles, a TOML layer and an environment layer; unknown names refused;
//! the effective dump loads back to the same configuration.

use std::time::Duration;

use prodkit_netcfg::{ClientConfig, DbPoolConfig, LoadError, ServerConfig};

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_profile_validates_and_its_dump_loads_back_the_same() {
    for s in [
        ServerConfig::internet_facing(),
        ServerConfig::internal(),
        ServerConfig::streaming(),
    ] {
        s.validate().unwrap();
        // Loaded over another profile, the dump gives every field back.
        assert_eq!(
            ServerConfig::internal().with_toml(&s.effective()).unwrap(),
            s
        );
    }
    for c in [
        ClientConfig::internet_facing(),
        ClientConfig::internal(),
        ClientConfig::streaming(),
    ] {
        c.validate().unwrap();
        assert_eq!(
            ClientConfig::streaming().with_toml(&c.effective()).unwrap(),
            c
        );
    }
    for d in [
        DbPoolConfig::internet_facing(),
        DbPoolConfig::internal(),
        DbPoolConfig::streaming(),
    ] {
        d.validate().unwrap();
        assert_eq!(
            DbPoolConfig::streaming().with_toml(&d.effective()).unwrap(),
            d
        );
    }
}

#[test]
fn layers_apply_in_order_and_change_only_what_they_name() {
    let base = ServerConfig::internet_facing();
    let file = base
        .clone()
        .with_toml("idle_timeout = \"45s\"\nmax_connections = 500\n")
        .unwrap();
    let env = file
        .clone()
        .with_vars(
            "APP",
            vars(&[
                ("APP_MAX_CONNECTIONS", "700"),
                ("APP_KEEP_ALIVE", "false"),
                ("OTHER_IDLE_TIMEOUT", "1s"),
            ]),
        )
        .unwrap();
    assert_eq!(
        env.idle_timeout,
        Duration::from_secs(45),
        "the file's value stays"
    );
    assert_eq!(
        env.max_connections, 700,
        "the environment wins over the file"
    );
    assert!(!env.keep_alive);
    // Nothing else moved.
    let mut expected = base.clone();
    expected.idle_timeout = Duration::from_secs(45);
    expected.max_connections = 700;
    expected.keep_alive = false;
    assert_eq!(env, expected);
}

#[test]
fn durations_take_units_and_compound_forms() {
    let c = ClientConfig::internal()
        .with_toml("total_timeout = \"1m 30s\"\nconnect_timeout = \"250ms\"")
        .unwrap();
    assert_eq!(c.total_timeout, Duration::from_secs(90));
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    let c = ClientConfig::internal()
        .with_vars("X", vars(&[("X_READ_TIMEOUT", " 2s ")]))
        .unwrap();
    assert_eq!(c.read_timeout, Duration::from_secs(2));
}

#[test]
fn unknown_fields_and_bad_values_are_refused_with_their_names() {
    let e = ServerConfig::internal()
        .with_toml("idle_timout = \"5s\"")
        .unwrap_err();
    assert!(
        matches!(e, LoadError::UnknownField { ref name, place: "TOML" } if name == "idle_timout"),
        "{e}"
    );
    let e = ServerConfig::internal()
        .with_vars("APP", vars(&[("APP_IDLE_TIMOUT", "5s")]))
        .unwrap_err();
    assert!(
        matches!(e, LoadError::UnknownField { ref name, .. } if name == "APP_IDLE_TIMOUT"),
        "{e}"
    );
    for (text, field) in [
        ("idle_timeout = 30", "idle_timeout"),     // a number, no unit
        ("idle_timeout = \"30\"", "idle_timeout"), // no unit
        ("idle_timeout = \"soon\"", "idle_timeout"),
        ("max_connections = -1", "max_connections"),
        ("max_connections = \"many\"", "max_connections"),
        ("keep_alive = \"yes\"", "keep_alive"),
    ] {
        let e = ServerConfig::internal().with_toml(text).unwrap_err();
        assert!(
            matches!(e, LoadError::BadValue { field: f, .. } if f == field),
            "{text}: {e}"
        );
        assert!(e.to_string().starts_with(field), "{e}");
    }
    // A count the dump could not write back (TOML integers are i64).
    let e = ServerConfig::internal()
        .with_vars(
            "APP",
            vars(&[("APP_MAX_CONNECTIONS", "18446744073709551615")]),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::BadValue {
                field: "MAX_CONNECTIONS",
                ..
            } | LoadError::BadValue {
                field: "max_connections",
                ..
            }
        ),
        "{e}"
    );
    let e = ServerConfig::internal()
        .with_toml("idle_timeout = ")
        .unwrap_err();
    assert!(matches!(e, LoadError::Syntax(_)), "{e}");
    let e = DbPoolConfig::internal()
        .with_file("/nonexistent/prodkit-netcfg.toml")
        .unwrap_err();
    assert!(matches!(e, LoadError::Io { .. }), "{e}");
}

#[test]
fn a_refused_layer_leaves_nothing_half_applied_for_the_caller() {
    // The builder methods take the configuration by value and return it
    // only on success: after an error the caller still has the profile it
    // started from, never a mix.
    let base = DbPoolConfig::internal();
    let result = base.clone().with_toml("max_open = 50\nnot_a_field = 1");
    assert!(result.is_err());
    assert_eq!(base, DbPoolConfig::internal());
}
