//! Every rule of `validate`, `validate_against` and `validate_for`, each
//! failing with the field at fault named.

use std::time::Duration;

use prodkit_netcfg::{ClientConfig, DbPoolConfig, Problem, ServerConfig};

/// The fields of a dump whose value is a duration or a count.
fn numeric_fields(dump: &str) -> Vec<(String, bool)> {
    dump.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(" = ")?;
            let is_duration = value.starts_with('"');
            (is_duration || value.parse::<u64>().is_ok()).then(|| (name.to_string(), is_duration))
        })
        .collect()
}

#[test]
fn a_zero_duration_or_count_is_refused_naming_its_field() {
    // Every numeric field of every profile set to zero, one at a time.
    // `max_idle` and `pool_max_idle_per_host` may be zero (no idle
    // connections kept).
    let zero = |name: &str, is_duration: bool| {
        if is_duration {
            format!("{name} = \"0s\"")
        } else {
            format!("{name} = 0")
        }
    };
    for base in [
        ServerConfig::internet_facing(),
        ServerConfig::internal(),
        ServerConfig::streaming(),
    ] {
        for (name, d) in numeric_fields(&base.effective()) {
            let e = base
                .clone()
                .with_toml(&zero(&name, d))
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(
                (e.field(), e.problem()),
                (name.as_str(), Problem::Zero),
                "{e}"
            );
        }
    }
    for base in [
        ClientConfig::internet_facing(),
        ClientConfig::internal(),
        ClientConfig::streaming(),
    ] {
        for (name, d) in numeric_fields(&base.effective()) {
            let cfg = base.clone().with_toml(&zero(&name, d)).unwrap();
            if name == "pool_max_idle_per_host" {
                // No idle connection kept: pooling off, a valid choice.
                cfg.validate().unwrap();
                continue;
            }
            let e = cfg.validate().unwrap_err();
            assert_eq!(
                (e.field(), e.problem()),
                (name.as_str(), Problem::Zero),
                "{e}"
            );
        }
    }
    for base in [
        DbPoolConfig::internet_facing(),
        DbPoolConfig::internal(),
        DbPoolConfig::streaming(),
    ] {
        for (name, d) in numeric_fields(&base.effective()) {
            let cfg = base.clone().with_toml(&zero(&name, d)).unwrap();
            match name.as_str() {
                "max_idle" => cfg.validate().unwrap(),
                "saturation_percent" => {
                    let e = cfg.validate().unwrap_err();
                    assert_eq!(
                        (e.field(), e.problem()),
                        ("saturation_percent", Problem::Range)
                    );
                }
                _ => {
                    let e = cfg.validate().expect_err(&name);
                    assert_eq!(
                        (e.field(), e.problem()),
                        (name.as_str(), Problem::Zero),
                        "{e}"
                    );
                }
            }
        }
    }
}

#[test]
fn timeouts_out_of_order_are_refused_naming_the_inner_one() {
    let s = |text: &str| {
        ServerConfig::internet_facing()
            .with_toml(text)
            .unwrap()
            .validate()
    };
    let e = s("first_byte_timeout = \"11s\"").unwrap_err();
    assert_eq!(
        (e.field(), e.problem()),
        ("first_byte_timeout", Problem::Order)
    );
    let e = s("header_read_timeout = \"31s\"").unwrap_err();
    assert_eq!(e.field(), "header_read_timeout");
    s("header_read_timeout = \"30s\"").unwrap(); // equal is allowed
    let e = s("max_header_bytes = 1023").unwrap_err();
    assert_eq!(
        (e.field(), e.problem()),
        ("max_header_bytes", Problem::Range)
    );

    for field in [
        "connect_timeout",
        "tls_handshake_timeout",
        "response_header_timeout",
        "read_timeout",
    ] {
        let e = ClientConfig::internal()
            .with_toml(&format!("{field} = \"11s\""))
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!((e.field(), e.problem()), (field, Problem::Order), "{e}");
    }

    let d = |text: &str| DbPoolConfig::internal().with_toml(text).unwrap().validate();
    let e = d("max_idle = 26").unwrap_err();
    assert_eq!((e.field(), e.problem()), ("max_idle", Problem::Order));
    d("max_idle = 25").unwrap();
    let e = d("max_idle_time = \"31m\"").unwrap_err();
    assert_eq!(e.field(), "max_idle_time");
    let e = d("health_check_timeout = \"6s\"").unwrap_err();
    assert_eq!(e.field(), "health_check_timeout");
    let e = d("saturation_percent = 101").unwrap_err();
    assert_eq!(
        (e.field(), e.problem()),
        ("saturation_percent", Problem::Range)
    );
}

#[test]
fn a_client_must_drop_idle_connections_before_its_servers_do() {
    for server in [
        ServerConfig::internet_facing(),
        ServerConfig::internal(),
        ServerConfig::streaming(),
    ] {
        for client in [
            ClientConfig::internet_facing(),
            ClientConfig::internal(),
            ClientConfig::streaming(),
        ] {
            client.validate_against(&server).unwrap();
        }
        let mut client = ClientConfig::internal();
        client.pool_idle_timeout = server.idle_timeout;
        let e = client.validate_against(&server).unwrap_err();
        assert_eq!(
            (e.field(), e.problem()),
            ("pool_idle_timeout", Problem::Order)
        );
        client.pool_idle_timeout = server.idle_timeout - Duration::from_millis(1);
        client.validate_against(&server).unwrap();
    }
}

#[test]
fn a_statement_must_end_before_the_request_it_serves() {
    let server = ServerConfig::internet_facing();
    DbPoolConfig::internet_facing()
        .validate_for(server.handler_timeout)
        .unwrap();
    let mut db = DbPoolConfig::internet_facing();
    db.statement_timeout = server.handler_timeout;
    let e = db.validate_for(server.handler_timeout).unwrap_err();
    assert_eq!(
        (e.field(), e.problem()),
        ("statement_timeout", Problem::Order)
    );
    assert!(e.to_string().contains("outlive its request"), "{e}");
    // The streaming profiles go together.
    DbPoolConfig::streaming()
        .validate_for(ServerConfig::streaming().handler_timeout)
        .unwrap();
}

#[test]
fn limits_out_of_what_the_libraries_take_are_refused_naming_their_field() {
    // Each loads, and validation refuses it before a library panics on it
    // or silently turns it into something else.
    let huge = "\"10000000000000000000s\"";
    let server = [
        "idle_timeout",
        "response_write_timeout",
        "request_read_timeout",
        "handler_timeout",
    ];
    for field in server {
        let cfg = ServerConfig::internal()
            .with_toml(&format!("{field} = {huge}"))
            .unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!((e.field(), e.problem()), (field, Problem::Range), "{e}");
    }
    for (text, field) in [
        (format!("connect_timeout = {huge}"), "connect_timeout"),
        (
            format!("health_check_timeout = {huge}"),
            "health_check_timeout",
        ),
        // Below 1 ms PostgreSQL would read 0: no limit at all.
        (
            "statement_timeout = \"500us\"".to_owned(),
            "statement_timeout",
        ),
        // Above 2^31 - 1 ms PostgreSQL refuses every connection.
        (
            "statement_timeout = \"25d\"".to_owned(),
            "statement_timeout",
        ),
        // The kernel takes 1 s to 32,767 s: connecting would fail at once.
        ("tcp_keepalive = \"500ms\"".to_owned(), "tcp_keepalive"),
        ("tcp_keepalive = \"10h\"".to_owned(), "tcp_keepalive"),
    ] {
        let cfg = DbPoolConfig::internal().with_toml(&text).unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(
            (e.field(), e.problem()),
            (field, Problem::Range),
            "{text}: {e}"
        );
    }
    for text in ["tcp_keepalive = \"500ms\"", "tcp_keepalive = \"10h\""] {
        let e = ClientConfig::internal()
            .with_toml(text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(
            (e.field(), e.problem()),
            ("tcp_keepalive", Problem::Range),
            "{text}: {e}"
        );
    }
    // The edges themselves pass.
    DbPoolConfig::internal()
        .with_toml("statement_timeout = \"1ms\"\ntcp_keepalive = \"1s\"")
        .unwrap()
        .validate()
        .unwrap();
    DbPoolConfig::internal()
        .with_toml("tcp_keepalive = \"32767s\"")
        .unwrap()
        .validate()
        .unwrap();
}
