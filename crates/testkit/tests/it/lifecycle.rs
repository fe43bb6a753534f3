//! One server in this process: start, query, durability, stop.

use prodkit_testkit::{Durability, Options, shared_or_skip};

use crate::{Scratch, start_or_skip};

#[test]
fn shared_server_answers_queries_and_is_shared() {
    let Some(pg) = shared_or_skip(Durability::Fast, "testkit start + query") else {
        return;
    };
    let mut client = pg.connect().unwrap();
    let row = client.query_one("SELECT 40 + $1::int", &[&2i32]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    client
        .batch_execute("CREATE TEMP TABLE t (v int); INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    let again = shared_or_skip(Durability::Fast, "testkit start + query").unwrap();
    assert!(std::ptr::eq(pg, again), "one server per process");
    if !pg.is_external() {
        let fsync: String = client.query_one("SHOW fsync", &[]).unwrap().get(0);
        assert_eq!(fsync, "off", "Durability::Fast turns fsync off");
        assert!(pg.data_dir().unwrap().join("PG_VERSION").is_file());
        // The TCP address works too, not only the unix socket.
        let port = pg.port().unwrap();
        let mut tcp = postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap();
        let one: i32 = tcp.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }
}

#[test]
fn server_default_durability_keeps_fsync_and_stop_cleans_up() {
    let base = Scratch::new("durable");
    let options = Options {
        durability: Durability::ServerDefault,
        base_dir: Some(base.0.clone()),
        ..Options::default()
    };
    let Some(pg) = start_or_skip(options, "testkit durable server") else {
        return;
    };
    let mut client = pg.connect().unwrap();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let v: String = client
            .query_one(&format!("SHOW {setting}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(v, "on", "{setting} keeps the server default");
    }
    drop(client);
    let data_dir = pg.data_dir().unwrap().to_path_buf();
    assert_eq!(base.entries().len(), 1, "one instance folder while running");
    pg.stop();
    assert!(!data_dir.exists(), "stop removes the folder");
    assert!(base.entries().is_empty());
    assert!(
        pg.connect().is_err(),
        "a stopped server refuses connections"
    );
    pg.stop(); // idempotent
}

#[test]
fn dropping_a_server_stops_it() {
    let base = Scratch::new("drop");
    let options = Options {
        base_dir: Some(base.0.clone()),
        ..Options::default()
    };
    let Some(pg) = start_or_skip(options, "testkit drop") else {
        return;
    };
    let config = pg.config();
    config.clone().connect(postgres::NoTls).unwrap();
    drop(pg);
    assert!(base.entries().is_empty(), "drop removes the folder");
    assert!(
        config.connect(postgres::NoTls).is_err(),
        "drop stops the server"
    );
}

#[test]
fn restart_keeps_the_data_and_the_address() {
    let base = Scratch::new("restart");
    let options = Options {
        base_dir: Some(base.0.clone()),
        ..Options::default()
    };
    let Some(pg) = start_or_skip(options, "testkit restart") else {
        return;
    };
    let mut client = pg.connect().unwrap();
    client
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        .unwrap();
    let (url, pid) = (pg.url(), pg.pid());
    pg.restart(std::time::Duration::from_millis(200)).unwrap();
    // The old connection was cut by the fast shutdown.
    assert!(client.query_one("SELECT 1", &[]).is_err());
    assert_eq!(pg.url(), url);
    assert_ne!(pg.pid(), pid, "a new postmaster");
    let mut client = pg.connect().unwrap();
    let v: i32 = client.query_one("SELECT v FROM kept", &[]).unwrap().get(0);
    assert_eq!(v, 7);
    pg.stop();
    assert!(
        pg.restart(std::time::Duration::ZERO).is_err(),
        "a stopped server stays stopped"
    );
}
