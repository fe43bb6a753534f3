//! The seed's Go designs translated literally, flaws included: the `naive`
//! baseline of each comparison group.

pub mod batch;
pub mod bufpool;
pub mod pool;
pub mod ratelimit;
