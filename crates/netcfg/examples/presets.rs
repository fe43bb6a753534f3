//! Loads the three configurations a service needs (a profile, then an
//! optional TOML file given as the first argument, then `APP_SERVER_*`,
//! `APP_CLIENT_*` and `APP_DB_*` environment variables), checks them
//! together, and prints what is in force.
//!
//! ```text
//! APP_SERVER_IDLE_TIMEOUT=75s cargo run -p prodkit-netcfg --example presets
//! ```
#![allow(clippy::print_stdout, reason = "an example shows its results")]

use prodkit_netcfg::{ClientConfig, DbPoolConfig, ServerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = ServerConfig::internet_facing();
    if let Some(path) = std::env::args().nth(1) {
        server = server.with_file(path)?;
    }
    let server = server.with_env("APP_SERVER")?;
    let client = ClientConfig::internal().with_env("APP_CLIENT")?;
    let db = DbPoolConfig::internet_facing().with_env("APP_DB")?;

    server.validate()?;
    client.validate()?;
    client.validate_against(&server)?;
    db.validate()?;
    db.validate_for(server.handler_timeout)?;

    println!("# server\n{}", server.effective());
    println!("# client\n{}", client.effective());
    println!("# database pool\n{}", db.effective());
    Ok(())
}
