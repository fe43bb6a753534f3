#![doc = include_str!("../README.md")]

mod discover;
mod server;
mod shared;
mod sys;
mod watchdog;

pub use discover::{Discovery, NotFound};
pub use server::{Durability, Options, PgServer, StartError};
pub use shared::{pg_required, shared, shared_or_skip};
pub use watchdog::watchdog;
