//! Integration tests of prodkit-cache, one binary (see the workspace style).

mod asynch;
mod behaviour;
mod loading;
mod prop;
mod refresh;
mod stress;

pub(crate) use prodkit_testkit::watchdog;
